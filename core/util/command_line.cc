#include "core/util/command_line.h"

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"

namespace moe {

std::vector<std::string> ParseCommandLine(int argc, char** argv,
                                          const char* usage) {
  absl::SetProgramUsageMessage(usage);
  // --help lists the program's own flags (defined in its main.cc, or in a
  // *_flags.cc shared by programs), whose file names do not repeat the
  // program name as Abseil expects.
  absl::FlagsUsageConfig config;
  config.contains_help_flags = [](absl::string_view path) {
    return absl::EndsWith(path, "main.cc") || absl::EndsWith(path, "_flags.cc");
  };
  config.contains_helpshort_flags = config.contains_help_flags;
  absl::SetFlagsUsageConfig(config);
  std::vector<std::string> normalized(argv, argv + argc);
  for (size_t i = 1; i < normalized.size(); ++i) {
    std::string& arg = normalized[i];
    if (arg == "--") break;
    if (arg.size() < 3 || arg[0] != '-' || arg[1] != '-') continue;
    const size_t name_end = std::min(arg.find('='), arg.size());
    for (size_t k = 2; k < name_end; ++k) {
      if (arg[k] == '-') arg[k] = '_';
    }
  }
  std::vector<char*> pointers;
  for (std::string& arg : normalized) pointers.push_back(arg.data());
  std::vector<std::string> positional;
  for (char* arg : absl::ParseCommandLine(static_cast<int>(pointers.size()),
                                          pointers.data())) {
    positional.emplace_back(arg);
  }
  positional.erase(positional.begin());  // the program name
  return positional;
}

}  // namespace moe

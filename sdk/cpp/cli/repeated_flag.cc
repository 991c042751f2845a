#include "sdk/cpp/cli/repeated_flag.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace moe::client {

absl::StatusOr<std::vector<std::string>> TakeRepeatedFlag(
    const std::string& name, std::vector<std::string>& args) {
  const std::string flag = absl::StrCat("--", name);
  const std::string flag_with_value = absl::StrCat(flag, "=");
  std::vector<std::string> values;
  std::vector<std::string> rest;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--") {
      rest.insert(rest.end(), args.begin() + i, args.end());
      break;
    }
    if (args[i] == flag) {
      if (i + 1 == args.size()) {
        return absl::InvalidArgumentError(absl::StrCat(flag, " needs a value"));
      }
      values.push_back(args[++i]);
    } else if (absl::StartsWith(args[i], flag_with_value)) {
      values.push_back(args[i].substr(flag_with_value.size()));
    } else {
      rest.push_back(args[i]);
    }
  }
  args = std::move(rest);
  return values;
}

}  // namespace moe::client

#ifndef MOE_CORE_UTIL_COMMAND_LINE_H_
#define MOE_CORE_UTIL_COMMAND_LINE_H_

#include <string>
#include <vector>

namespace moe {

// Parses Abseil flags, accepting dashes in flag names (--max-tokens as well as
// --max_tokens), and exits with a usage message on unknown flags. Returns the
// positional arguments.
std::vector<std::string> ParseCommandLine(int argc, char** argv,
                                          const char* usage);

}  // namespace moe

#endif  // MOE_CORE_UTIL_COMMAND_LINE_H_

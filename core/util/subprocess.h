#ifndef MOE_CORE_UTIL_SUBPROCESS_H_
#define MOE_CORE_UTIL_SUBPROCESS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace moe {

// Runs args[0] (looked up on PATH) with its arguments, its stdout and stderr
// going to `log_path`, and waits. A failure to start or a non-zero exit is an
// error that quotes the end of the log.
absl::Status RunProgram(const std::vector<std::string>& args,
                        const std::string& log_path);

}  // namespace moe

#endif  // MOE_CORE_UTIL_SUBPROCESS_H_

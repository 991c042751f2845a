#ifndef MOE_SDK_CPP_CLI_REPEATED_FLAG_H_
#define MOE_SDK_CPP_CLI_REPEATED_FLAG_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace moe::client {

// Takes every occurrence of a flag that may be repeated (`--NAME VALUE` or
// `--NAME=VALUE`) out of `args`, returning the values in order. Abseil keeps
// only the last value of a repeated flag, and a comma list could not hold a
// value with a comma. Arguments after "--" are left alone.
absl::StatusOr<std::vector<std::string>> TakeRepeatedFlag(
    const std::string& name, std::vector<std::string>& args);

}  // namespace moe::client

#endif  // MOE_SDK_CPP_CLI_REPEATED_FLAG_H_

#ifndef MOE_CORE_UTIL_FILE_UTIL_H_
#define MOE_CORE_UTIL_FILE_UTIL_H_

#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace moe {

absl::StatusOr<std::string> ReadFileToString(const std::string& path);

absl::Status WriteStringToFile(const std::string& path,
                               const std::string& contents);

// Reads and parses a JSON file; errors name the file.
absl::StatusOr<nlohmann::json> ReadJsonFile(const std::string& path);

}  // namespace moe

#endif  // MOE_CORE_UTIL_FILE_UTIL_H_

#ifndef MOE_TOOLS_MOE_GENERATE_NPY_H_
#define MOE_TOOLS_MOE_GENERATE_NPY_H_

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace moe {

// Writes a little-endian float32 NumPy .npy file (format 1.0) of `shape`.
absl::Status WriteNpyFloat32(const std::string& path,
                             std::span<const float> values,
                             const std::vector<int64_t>& shape);

}  // namespace moe

#endif  // MOE_TOOLS_MOE_GENERATE_NPY_H_

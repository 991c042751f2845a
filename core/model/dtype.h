#ifndef MOE_CORE_MODEL_DTYPE_H_
#define MOE_CORE_MODEL_DTYPE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace moe {

// Element types of checkpoint tensors, named as safetensors names them.
enum class DType { kF32, kF16, kBF16, kF8E4M3 };

// Bytes per element. Inline and constexpr: the kernels use it per element.
constexpr size_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return 4;
    case DType::kF16:
    case DType::kBF16:
      return 2;
    case DType::kF8E4M3:
      return 1;
  }
  return 0;
}

// The safetensors spelling: "F32", "F16", "BF16", "F8_E4M3".
const char* DTypeName(DType dtype);

// Parses a safetensors dtype string; any other dtype is an error naming it.
absl::StatusOr<DType> ParseDType(std::string_view name);

}  // namespace moe

#endif  // MOE_CORE_MODEL_DTYPE_H_

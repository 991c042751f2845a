#include "core/model/dtype.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace moe {

const char* DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "F32";
    case DType::kF16:
      return "F16";
    case DType::kBF16:
      return "BF16";
    case DType::kF8E4M3:
      return "F8_E4M3";
  }
  return "?";
}

absl::StatusOr<DType> ParseDType(std::string_view name) {
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16, DType::kF8E4M3}) {
    if (name == DTypeName(dtype)) return dtype;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported dtype \"", std::string(name),
                   "\" (supported: F32, F16, BF16, F8_E4M3)"));
}

}  // namespace moe

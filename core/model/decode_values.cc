#include "core/model/decode_values.h"

#include <array>
#include <cstring>

#include "core/model/float_formats.h"

namespace moe {
namespace {

const std::array<float, 256>& Fp8Table() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> values;
    for (int code = 0; code < 256; ++code) {
      values[code] = Fp8E4M3ToFloat(static_cast<uint8_t>(code));
    }
    return values;
  }();
  return table;
}

}  // namespace

void DecodeValues(DType dtype, const uint8_t* values, int64_t len, float* out) {
  switch (dtype) {
    case DType::kF8E4M3: {
      const std::array<float, 256>& table = Fp8Table();
      for (int64_t k = 0; k < len; ++k) out[k] = table[values[k]];
      return;
    }
    case DType::kBF16:
    case DType::kF16:
      for (int64_t k = 0; k < len; ++k) {
        uint16_t bits;
        std::memcpy(&bits, values + 2 * k, 2);
        out[k] = dtype == DType::kBF16 ? Bf16ToFloat(bits) : F16ToFloat(bits);
      }
      return;
    case DType::kF32:
      std::memcpy(out, values, static_cast<size_t>(len) * 4);
      return;
  }
}

}  // namespace moe

// Portable kernels: decode a chunk of each weight row to float32, then plain
// dot products the compiler can vectorize. Used on CPUs without AVX-512.
#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "core/float_formats.h"
#include "core/linear_kernels.h"

namespace moe::internal {
namespace {

constexpr int64_t kChunk = 1024;

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

void LinearRowsGeneric(const LinearWeight& w, int64_t row_begin,
                       int64_t row_end, const float* x, int64_t n, float* y) {
  std::vector<float> decoded(kChunk);
  const int64_t esize = static_cast<int64_t>(DTypeSize(w.dtype));
  const int64_t row_bytes = w.cols * esize;
  for (int64_t r = row_begin; r < row_end; ++r) {
    for (int64_t i = 0; i < n; ++i) y[i * w.rows + r] = 0.0f;
    for (int64_t k0 = 0; k0 < w.cols; k0 += kChunk) {
      const int64_t len = std::min(kChunk, w.cols - k0);
      DecodeValues(w.dtype, w.data + r * row_bytes + k0 * esize, len,
                   decoded.data());
      for (int64_t i = 0; i < n; ++i) {
        const float* xi = x + i * w.cols + k0;
        float dot = 0.0f;
        for (int64_t k = 0; k < len; ++k) dot += decoded[k] * xi[k];
        y[i * w.rows + r] += dot;
      }
    }
    for (int64_t i = 0; i < n; ++i) y[i * w.rows + r] *= w.RowScale(r);
  }
}

}  // namespace moe::internal

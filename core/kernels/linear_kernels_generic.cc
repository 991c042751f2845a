// Portable kernels: decode a chunk of each weight row to float32, then plain
// dot products the compiler can vectorize. Used on CPUs without AVX-512.
#include <algorithm>
#include <vector>

#include "core/kernels/linear_kernels.h"
#include "core/model/decode_values.h"

namespace moe::internal {
namespace {

constexpr int64_t kChunk = 1024;

}  // namespace

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

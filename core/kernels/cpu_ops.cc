#include "core/kernels/cpu_ops.h"

#include <algorithm>
#include <cmath>

namespace moe {

void RmsNorm(const float* x, int64_t n, std::span<const float> weight,
             double eps, float* out) {
  const int64_t dim = static_cast<int64_t>(weight.size());
  for (int64_t i = 0; i < n; ++i) {
    const float* row = x + i * dim;
    double sum_squares = 0.0;
    for (int64_t k = 0; k < dim; ++k) sum_squares += double{row[k]} * row[k];
    const float inv_rms =
        static_cast<float>(1.0 / std::sqrt(sum_squares / dim + eps));
    for (int64_t k = 0; k < dim; ++k) {
      out[i * dim + k] = row[k] * inv_rms * weight[k];
    }
  }
}

void ApplyRope(float* x, int64_t n, int heads, int head_dim,
               const int32_t* positions, double theta) {
  const int half = head_dim / 2;
  for (int64_t i = 0; i < n; ++i) {
    for (int k = 0; k < half; ++k) {
      // Angles in double: float32 loses the phase at long positions.
      const double inv_freq = std::pow(theta, -2.0 * k / head_dim);
      const double angle = positions[i] * inv_freq;
      const float cos = static_cast<float>(std::cos(angle));
      const float sin = static_cast<float>(std::sin(angle));
      for (int h = 0; h < heads; ++h) {
        float* head = x + (i * heads + h) * head_dim;
        const float a = head[k];
        const float b = head[k + half];
        head[k] = a * cos - b * sin;
        head[k + half] = b * cos + a * sin;
      }
    }
  }
}

void SiluMul(float* gate, const float* up, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
  }
}

void Softmax(float* values, int64_t count) {
  const float max = *std::max_element(values, values + count);
  double sum = 0.0;
  for (int64_t i = 0; i < count; ++i) {
    values[i] = std::exp(values[i] - max);
    sum += values[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < count; ++i) values[i] *= inv;
}

}  // namespace moe

#include "core/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/cpu_ops.h"

namespace moe {

void CausalAttention(const AttentionShape& shape, const float* q, int64_t n,
                     int64_t start, const float* keys, const float* values,
                     float* out, ThreadPool& pool) {
  const int heads = shape.num_heads;
  const int dim = shape.head_dim;
  const int group = heads / shape.num_kv_heads;
  const int64_t kv_stride = static_cast<int64_t>(shape.num_kv_heads) * dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(dim));
  pool.ParallelFor(n * heads, [&](int64_t begin, int64_t end) {
    std::vector<float> scores;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t i = task / heads;
      const int h = static_cast<int>(task % heads);
      const int kv_head = h / group;
      const int64_t position = start + i;
      const int64_t first =
          shape.sliding_window > 0
              ? std::max<int64_t>(0, position - shape.sliding_window + 1)
              : 0;
      const float* query = q + (i * heads + h) * dim;
      scores.resize(static_cast<size_t>(position - first + 1));
      for (int64_t p = first; p <= position; ++p) {
        const float* key = keys + p * kv_stride + kv_head * dim;
        float dot = 0.0f;
        for (int d = 0; d < dim; ++d) dot += query[d] * key[d];
        scores[p - first] = dot * scale;
      }
      Softmax(scores.data(), static_cast<int64_t>(scores.size()));
      float* result = out + (i * heads + h) * dim;
      std::fill(result, result + dim, 0.0f);
      for (int64_t p = first; p <= position; ++p) {
        const float* value = values + p * kv_stride + kv_head * dim;
        const float weight = scores[p - first];
        for (int d = 0; d < dim; ++d) result[d] += weight * value[d];
      }
    }
  });
}

}  // namespace moe

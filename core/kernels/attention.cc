#include "core/kernels/attention.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

namespace moe {
namespace {

// Partial sums per lane: fixed-width inner loops the compiler turns into
// whole vector registers, with no reassociation of a serial float sum.
constexpr int kLanes = 16;

inline float Dot(const float* a, const float* b, int n) {
  float partial[kLanes] = {};
  int k = 0;
  for (; k + kLanes <= n; k += kLanes) {
    for (int l = 0; l < kLanes; ++l) partial[l] += a[k + l] * b[k + l];
  }
  float sum = 0.0f;
  for (; k < n; ++k) sum += a[k] * b[k];
  for (int l = 0; l < kLanes; ++l) sum += partial[l];
  return sum;
}

// exp(x) for x <= 0 (softmax after subtracting the max), branch-free so that
// loops over it vectorize: x = n ln2 + r with |r| <= ln2/2, exp(r) by its
// degree-6 Taylor polynomial (relative error below 2e-7 on that interval),
// times 2^n built in the exponent bits. Flushes to exp(-87) ~ 1.6e-38 below.
inline float ExpNonPositive(float x) {
  x = x > -87.0f ? x : -87.0f;  // also maps NaN into range: no UB below
  const float n = std::nearbyint(x * 1.44269504f);
  const float r = (x - n * 0.693145751953125f) - n * 1.42860677e-6f;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t exponent_bits = (static_cast<int32_t>(n) + 127) << 23;
  return p * std::bit_cast<float>(exponent_bits);
}

// One query head over keys/values [first, last] (blocks of `block_size`
// rows of `kv_stride` floats, already offset to this head): scores, softmax,
// weighted sum of values. Cloned per instruction set; the helpers above are
// inlined into each clone and vectorized for it.
__attribute__((target_clones("avx512f", "avx2", "default"))) void AttendOneHead(
    const float* query, const float* const* key_blocks,
    const float* const* value_blocks, int64_t head_offset, int64_t block_size,
    int64_t kv_stride, int64_t first, int64_t last, int dim, float scale,
    float* scores, float* out) {
  // Visits the positions [first, last] block by block: f(p, row of p).
  auto for_each_row = [&](const float* const* blocks, auto&& f) {
    for (int64_t p = first; p <= last;) {
      const int64_t block = p / block_size;
      const int64_t end = std::min(last + 1, (block + 1) * block_size);
      const float* row =
          blocks[block] + (p - block * block_size) * kv_stride + head_offset;
      for (; p < end; ++p, row += kv_stride) f(p - first, row);
    }
  };
  float max = -INFINITY;
  for_each_row(key_blocks, [&](int64_t i, const float* key) {
    scores[i] = Dot(query, key, dim) * scale;
    max = std::max(max, scores[i]);
  });
  const int64_t count = last - first + 1;
  float total = 0.0f;
  for (int64_t i = 0; i < count; ++i) {
    scores[i] = ExpNonPositive(scores[i] - max);
    total += scores[i];
  }
  const float inv_total = 1.0f / total;
  std::fill(out, out + dim, 0.0f);
  for_each_row(value_blocks, [&](int64_t i, const float* value) {
    const float weight = scores[i] * inv_total;
    for (int d = 0; d < dim; ++d) out[d] += weight * value[d];
  });
}

}  // namespace

void CausalAttention(const AttentionShape& shape, const float* q, int64_t n,
                     int64_t start, const PagedKv& kv, float* out,
                     ThreadPool& pool) {
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
      scores.resize(static_cast<size_t>(position - first + 1));
      AttendOneHead(q + (i * heads + h) * dim, kv.key_blocks.data(),
                    kv.value_blocks.data(), int64_t{kv_head} * dim,
                    kv.block_size, kv_stride, first, position, dim, scale,
                    scores.data(), out + (i * heads + h) * dim);
    }
  });
}

}  // namespace moe

#include "core/kernels/attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace moe {
namespace {

// softmax(q . k / sqrt(d)) . v over the causal (and windowed) prefix, in
// double, written from the definition.
std::vector<double> ReferenceAttention(const AttentionShape& s,
                                       const std::vector<float>& q, int64_t n,
                                       int64_t start,
                                       const std::vector<float>& k,
                                       const std::vector<float>& v) {
  const int d = s.head_dim;
  const int64_t kv_stride = static_cast<int64_t>(s.num_kv_heads) * d;
  std::vector<double> out(n * s.num_heads * d, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    for (int h = 0; h < s.num_heads; ++h) {
      const int kv = h / (s.num_heads / s.num_kv_heads);
      const int64_t pos = start + i;
      const int64_t first =
          s.sliding_window > 0
              ? std::max<int64_t>(0, pos - s.sliding_window + 1)
              : 0;
      std::vector<double> scores;
      double max = -INFINITY;
      for (int64_t p = first; p <= pos; ++p) {
        double dot = 0.0;
        for (int c = 0; c < d; ++c)
          dot += double{q[(i * s.num_heads + h) * d + c]} *
                 k[p * kv_stride + kv * d + c];
        scores.push_back(dot / std::sqrt(static_cast<double>(d)));
        max = std::max(max, scores.back());
      }
      double total = 0.0;
      for (double& score : scores) total += (score = std::exp(score - max));
      for (int64_t p = first; p <= pos; ++p) {
        for (int c = 0; c < d; ++c) {
          out[(i * s.num_heads + h) * d + c] +=
              scores[p - first] / total * v[p * kv_stride + kv * d + c];
        }
      }
    }
  }
  return out;
}

struct Case {
  AttentionShape shape;
  int64_t n;
  int64_t start;
  float query_scale;       // large values make sharply peaked softmaxes
  int64_t block_size = 0;  // KV blocks of this many positions; 0: one array
};

// `rows` [positions, stride] copied into blocks of `block_size` rows, each
// its own allocation, as a paged KV cache holds them.
std::vector<std::vector<float>> ToBlocks(const std::vector<float>& rows,
                                         int64_t stride, int64_t block_size) {
  std::vector<std::vector<float>> blocks;
  for (int64_t first = 0; first * stride < static_cast<int64_t>(rows.size());
       first += block_size) {
    blocks.emplace_back(block_size * stride, NAN);  // unused rows poison
    const int64_t count =
        std::min<int64_t>(block_size * stride,
                          static_cast<int64_t>(rows.size()) - first * stride);
    std::copy_n(rows.begin() + first * stride, count, blocks.back().begin());
  }
  return blocks;
}

std::vector<const float*> Pointers(
    const std::vector<std::vector<float>>& blocks) {
  std::vector<const float*> pointers;
  for (const auto& block : blocks) pointers.push_back(block.data());
  return pointers;
}

class AttentionTest : public ::testing::TestWithParam<Case> {};

TEST_P(AttentionTest, MatchesFloat64Reference) {
  const Case& c = GetParam();
  const int64_t positions = c.start + c.n;
  std::mt19937 generator(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> q(c.n * c.shape.num_heads * c.shape.head_dim);
  std::vector<float> k(positions * c.shape.num_kv_heads * c.shape.head_dim);
  std::vector<float> v(k.size());
  for (float& x : q) x = normal(generator) * c.query_scale;
  for (float& x : k) x = normal(generator);
  for (float& x : v) x = normal(generator);
  std::vector<float> out(q.size());
  ThreadPool pool(2);
  const int64_t stride =
      static_cast<int64_t>(c.shape.num_kv_heads) * c.shape.head_dim;
  const int64_t block_size = c.block_size > 0 ? c.block_size : positions;
  const auto key_blocks = ToBlocks(k, stride, block_size);
  const auto value_blocks = ToBlocks(v, stride, block_size);
  const std::vector<const float*> keys = Pointers(key_blocks);
  const std::vector<const float*> values = Pointers(value_blocks);
  CausalAttention(c.shape, q.data(), c.n, c.start,
                  PagedKv{keys, values, block_size}, out.data(), pool);
  const std::vector<double> expected =
      ReferenceAttention(c.shape, q, c.n, c.start, k, v);
  // Outputs are convex combinations of N(0, 1) values: an absolute bound.
  for (size_t i = 0; i < out.size(); ++i) {
    ASSERT_NEAR(out[i], expected[i], 2e-5) << "element " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, AttentionTest,
    ::testing::Values(
        Case{{4, 4, 16, 0}, 1, 0, 1.0f},    // first token
        Case{{8, 2, 64, 0}, 1, 700, 1.0f},  // GQA decode, long context
        Case{{8, 2, 64, 0}, 37, 5, 1.0f},   // GQA prefill
        Case{{6, 3, 20, 0},
             9,
             300,
             8.0f},  // head_dim not a multiple of 16, peaked
        Case{{4, 1, 32, 50}, 20, 200, 1.0f},    // sliding window
        Case{{2, 2, 128, 0}, 3, 100, 30.0f},    // extreme scores: exp underflow
        Case{{8, 2, 64, 0}, 1, 700, 1.0f, 16},  // paged decode
        Case{{8, 2, 64, 0}, 37, 5, 1.0f, 16},   // paged prefill
        Case{{4, 1, 32, 50}, 20, 200, 1.0f, 7},  // paged, sliding window
        Case{{4, 4, 16, 0}, 5, 0, 1.0f, 1}));    // a block per position

}  // namespace
}  // namespace moe

// The router's part of a decoder layer on the GPU against the layer's math
// in double: two sequences prefilled in one step, then one decode row each.
#include "engine/cuda/router_layer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "tests/gpu/device_paged_batch.h"
#include "tests/gpu/gpu_test_util.h"

namespace moe::cuda {
namespace {

using ::moe::cuda::testing::DeviceArray;
using ::moe::cuda::testing::DevicePagedBatch;
using ::moe::cuda::testing::FromBf16;
using ::moe::cuda::testing::RandomFloats;
using ::moe::cuda::testing::RelativeError;
using ::moe::cuda::testing::ToBf16;

// The GPU rounds the products' inputs (normalized rows, the attention
// output) and the cached keys and values to BF16 (2^-9 relative each); the
// reference rounds nothing. Through two products and attention that is
// ~5e-3 relative on the attention's contribution, less on the residual sum.
constexpr double kTolerance = 1e-2;
// A routing decision is compared only where the reference's k-th and
// (k+1)-th probabilities differ by more than this (else rounding may flip
// it); its weights then agree to about the same amount.
constexpr double kRoutingMargin = 0.02;

using Matrix = std::vector<float>;  // row-major [out, in], BF16 values

// y = w . x for w [rows, cols].
std::vector<double> Product(const Matrix& w, const std::vector<double>& x,
                            int rows) {
  const size_t cols = x.size();
  std::vector<double> y(rows, 0.0);
  for (int r = 0; r < rows; ++r) {
    for (size_t c = 0; c < cols; ++c) y[r] += double{w[r * cols + c]} * x[c];
  }
  return y;
}

std::vector<double> RmsNorm(const std::vector<double>& x,
                            const std::vector<float>& weight, double eps) {
  double squares = 0.0;
  for (double v : x) squares += v * v;
  const double scale = 1.0 / std::sqrt(squares / x.size() + eps);
  std::vector<double> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = x[i] * scale * weight[i];
  return out;
}

// NeoX rotary embedding: in each head the pair (i, i + head_dim / 2) turns
// by position * theta^(-2i / head_dim).
void Rotate(std::vector<double>& x, int heads, int head_dim, int position,
            double theta) {
  const int half = head_dim / 2;
  for (int h = 0; h < heads; ++h) {
    for (int i = 0; i < half; ++i) {
      const double angle = position * std::pow(theta, -2.0 * i / head_dim);
      double& a = x[h * head_dim + i];
      double& b = x[h * head_dim + i + half];
      const double a0 = a, b0 = b;
      a = a0 * std::cos(angle) - b0 * std::sin(angle);
      b = b0 * std::cos(angle) + a0 * std::sin(angle);
    }
  }
}

struct LayerWeights {
  std::vector<float> input_norm, post_norm;
  Matrix q, k, v, o, gate;
};

// Random weights scaled so that every product's outputs are O(1); held as
// the BF16 values the device gets.
LayerWeights RandomWeights(const RouterLayerShape& s, uint32_t seed) {
  const int qw = s.heads * s.head_dim, kvw = s.kv_heads * s.head_dim;
  auto bf16_values = [](std::vector<float> values) {
    return FromBf16(ToBf16(values));
  };
  const float in_scale = 1.0f / std::sqrt(float(s.hidden));
  LayerWeights w;
  w.input_norm = bf16_values(RandomFloats(s.hidden, seed, 0.2f));
  for (float& g : w.input_norm) g += 1.0f;
  w.post_norm = bf16_values(RandomFloats(s.hidden, seed + 1, 0.2f));
  for (float& g : w.post_norm) g += 1.0f;
  w.q = bf16_values(RandomFloats(size_t(qw) * s.hidden, seed + 2, in_scale));
  w.k = bf16_values(RandomFloats(size_t(kvw) * s.hidden, seed + 3, in_scale));
  w.v = bf16_values(RandomFloats(size_t(kvw) * s.hidden, seed + 4, in_scale));
  w.o = bf16_values(RandomFloats(size_t(s.hidden) * qw, seed + 5,
                                 1.0f / std::sqrt(float(qw))));
  w.gate = bf16_values(
      RandomFloats(size_t(s.gating.experts) * s.hidden, seed + 6, in_scale));
  return w;
}

// One sequence's keys and values by position, as the reference keeps them.
struct ReferenceCache {
  std::vector<std::vector<double>> keys, values;
};

struct ReferenceRows {
  std::vector<double> x;             // [rows, hidden] after the residual
  std::vector<double> expert_input;  // [rows, hidden]
  std::vector<std::vector<double>> probabilities;  // [rows][experts]
};

// The layer for a step's rows (sequence, position), from the definitions.
ReferenceRows ReferenceStep(const RouterLayerShape& s, const LayerWeights& w,
                            const std::vector<std::pair<int, int>>& rows,
                            const std::vector<float>& x,
                            std::vector<ReferenceCache>& caches) {
  const int qw = s.heads * s.head_dim, kvw = s.kv_heads * s.head_dim;
  std::vector<std::vector<double>> q(rows.size());
  for (size_t r = 0; r < rows.size(); ++r) {
    const auto [sequence, position] = rows[r];
    const std::vector<double> row(x.begin() + r * s.hidden,
                                  x.begin() + (r + 1) * s.hidden);
    const std::vector<double> n = RmsNorm(row, w.input_norm, s.rms_norm_eps);
    q[r] = Product(w.q, n, qw);
    std::vector<double> k = Product(w.k, n, kvw);
    Rotate(q[r], s.heads, s.head_dim, position, s.rope_theta);
    Rotate(k, s.kv_heads, s.head_dim, position, s.rope_theta);
    ReferenceCache& cache = caches[sequence];
    cache.keys.resize(std::max<size_t>(cache.keys.size(), position + 1));
    cache.values.resize(cache.keys.size());
    cache.keys[position] = k;
    cache.values[position] = Product(w.v, n, kvw);
  }
  ReferenceRows out;
  for (size_t r = 0; r < rows.size(); ++r) {
    const auto [sequence, position] = rows[r];
    const ReferenceCache& cache = caches[sequence];
    std::vector<double> attention(qw, 0.0);
    // Causal, over the last sliding_window positions when there is one.
    const int first =
        s.sliding_window > 0 ? std::max(0, position - s.sliding_window + 1) : 0;
    for (int h = 0; h < s.heads; ++h) {
      const int kv = h / (s.heads / s.kv_heads);
      std::vector<double> scores(position + 1, -INFINITY);
      for (int t = first; t <= position; ++t) {
        double dot = 0.0;
        for (int d = 0; d < s.head_dim; ++d) {
          dot += q[r][h * s.head_dim + d] * cache.keys[t][kv * s.head_dim + d];
        }
        scores[t] = dot / std::sqrt(double(s.head_dim));
      }
      const double max = *std::max_element(scores.begin(), scores.end());
      double total = 0.0;
      for (double& score : scores) total += (score = std::exp(score - max));
      for (int t = first; t <= position; ++t) {
        for (int d = 0; d < s.head_dim; ++d) {
          attention[h * s.head_dim + d] +=
              scores[t] / total * cache.values[t][kv * s.head_dim + d];
        }
      }
    }
    std::vector<double> residual = Product(w.o, attention, s.hidden);
    for (int c = 0; c < s.hidden; ++c) residual[c] += x[r * s.hidden + c];
    const std::vector<double> e =
        RmsNorm(residual, w.post_norm, s.rms_norm_eps);
    std::vector<double> z = Product(w.gate, e, s.gating.experts);
    if (s.gating.use_logits_norm) {
      const double mean = std::accumulate(z.begin(), z.end(), 0.0) / z.size();
      double var = 0.0;
      for (double v : z) var += (v - mean) * (v - mean);
      const double stddev = std::sqrt(var / (z.size() - 1));
      if (stddev > 0) {
        for (double& v : z) v /= stddev / s.gating.gate_norm_std;
      }
    }
    const double max = *std::max_element(z.begin(), z.end());
    double total = 0.0;
    for (double& v : z) total += (v = std::exp(v - max));
    for (double& v : z) v /= total;
    out.x.insert(out.x.end(), residual.begin(), residual.end());
    out.expert_input.insert(out.expert_input.end(), e.begin(), e.end());
    out.probabilities.push_back(z);
  }
  return out;
}

// Where the reference's choice is clear, the GPU chose the same experts in
// the same order with the renormalized weights. Returns the rows compared.
int ExpectSameRouting(const RouterLayerShape& s, const ReferenceRows& ref,
                      const std::vector<int32_t>& ids,
                      const std::vector<float>& weights) {
  const int top_k = s.gating.top_k;
  int compared = 0;
  for (size_t r = 0; r < ref.probabilities.size(); ++r) {
    const std::vector<double>& p = ref.probabilities[r];
    std::vector<int> order(p.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return p[a] > p[b]; });
    bool clear = true;
    for (int j = 0; j + 1 < int(order.size()) && j < top_k; ++j) {
      clear = clear && p[order[j]] - p[order[j + 1]] > kRoutingMargin;
    }
    if (!clear) continue;
    ++compared;
    double kept = 0.0;
    for (int j = 0; j < top_k; ++j) kept += p[order[j]];
    for (int j = 0; j < top_k; ++j) {
      EXPECT_EQ(ids[r * top_k + j], order[j]) << "row " << r << " choice " << j;
      EXPECT_NEAR(weights[r * top_k + j], p[order[j]] / kept, kRoutingMargin)
          << "row " << r << " choice " << j;
    }
  }
  return compared;
}

void CheckLayer(const RouterLayerShape& s, uint32_t seed) {
  const LayerWeights w = RandomWeights(s, seed);
  DeviceArray<__nv_bfloat16> input_norm(ToBf16(w.input_norm)),
      post_norm(ToBf16(w.post_norm)), q(ToBf16(w.q)), k(ToBf16(w.k)),
      v(ToBf16(w.v)), o(ToBf16(w.o)), gate(ToBf16(w.gate));
  const RouterLayerWeights weights{input_norm.get(), q.get(), k.get(),
                                   v.get(),          o.get(), post_norm.get(),
                                   gate.get()};
  std::string error;
  std::unique_ptr<RouterLayer> layer = RouterLayer::Create(s, 16, &error);
  ASSERT_NE(layer, nullptr) << error;

  // Blocks of 4 positions: sequence 0 takes blocks 3 and 0, sequence 1
  // block 2; blocks 1 and 4 stay poisoned (NaN), so a stray read shows.
  const PagedKvLayout layout{5, 4, s.kv_heads, s.head_dim};
  DeviceArray<__nv_bfloat16> key_pool(layout.PoolElements()),
      value_pool(layout.PoolElements());
  const std::vector<int32_t> offsets = {0, 2}, tables = {3, 0, 2};
  std::vector<ReferenceCache> caches(2);

  int routed_rows_compared = 0;
  // Step 1 prefills 5 and 3 positions; step 2 decodes one row each.
  const std::vector<std::vector<std::pair<int, int>>> steps = {
      {{0, 0}, {0, 1}, {0, 2}, {0, 3}, {0, 4}, {1, 0}, {1, 1}, {1, 2}},
      {{1, 3}, {0, 5}}};
  for (size_t step = 0; step < steps.size(); ++step) {
    SCOPED_TRACE(::testing::Message() << "step " << step);
    const auto& rows = steps[step];
    const int n = int(rows.size());
    std::vector<int32_t> sequences, positions;
    for (const auto& [sequence, position] : rows) {
      sequences.push_back(sequence);
      positions.push_back(position);
    }
    const DevicePagedBatch batch(sequences, positions, offsets, tables);
    const std::vector<float> x_host =
        RandomFloats(size_t(n) * s.hidden, seed + 10 + step);
    DeviceArray<float> x(x_host), expert_input(size_t(n) * s.hidden),
        expert_weights(size_t(n) * s.gating.top_k);
    DeviceArray<int32_t> expert_ids(size_t(n) * s.gating.top_k);
    ASSERT_TRUE(layer->AttendAndRoute(
        weights, x.get(), batch.batch(), layout, key_pool.get(),
        value_pool.get(),
        {expert_input.get(), expert_ids.get(), expert_weights.get()}, nullptr,
        &error))
        << error;
    const ReferenceRows ref = ReferenceStep(s, w, rows, x_host, caches);
    EXPECT_LT(RelativeError(x.ToHost(), ref.x), kTolerance);
    EXPECT_LT(RelativeError(expert_input.ToHost(), ref.expert_input),
              kTolerance);
    routed_rows_compared +=
        ExpectSameRouting(s, ref, expert_ids.ToHost(), expert_weights.ToHost());
  }
  EXPECT_GT(routed_rows_compared, 0)
      << "no row had a clear routing choice: the check is empty";
}

RouterLayerShape SmallShape() {
  RouterLayerShape s;
  s.hidden = 128;
  s.heads = 4;
  s.kv_heads = 2;
  s.head_dim = 32;
  s.rope_theta = 10000.0;
  s.rms_norm_eps = 1e-5f;
  s.gating.experts = 8;
  s.gating.top_k = 2;
  return s;
}

TEST(RouterLayerTest, MixtralShapedLayerMatchesFloat64Reference) {
  MOE_SKIP_WITHOUT_GPU();
  CheckLayer(SmallShape(), 1);
}

TEST(RouterLayerTest, SkyworkShapedLayerMatchesFloat64Reference) {
  MOE_SKIP_WITHOUT_GPU();
  RouterLayerShape s = SmallShape();
  s.kv_heads = s.heads;  // multi-head attention, as Skywork-MoE
  s.gating.experts = 16;
  s.gating.use_logits_norm = true;
  s.gating.gate_norm_std = 2.0f;
  CheckLayer(s, 50);
}

// Mistral-style sliding-window attention: a row sees only its last three
// positions.
TEST(RouterLayerTest, SlidingWindowLayerMatchesFloat64Reference) {
  MOE_SKIP_WITHOUT_GPU();
  RouterLayerShape s = SmallShape();
  s.sliding_window = 3;
  CheckLayer(s, 70);
}

// Skywork-MoE's real layer: hidden 4608, 36 heads of 128 (no GQA), 16
// experts, top-2 with the logit normalization.
TEST(RouterLayerTest, SkyworkMoeLayerShapeMatchesFloat64Reference) {
  MOE_SKIP_WITHOUT_GPU();
  RouterLayerShape s;
  s.hidden = 4608;
  s.heads = s.kv_heads = 36;
  s.head_dim = 128;
  s.rope_theta = 10000.0;
  s.rms_norm_eps = 1e-6f;
  s.gating = {16, 2, /*use_logits_norm=*/true, 1.0f};
  CheckLayer(s, 90);
}

TEST(RouterLayerTest, RefusesShapesItCannotRun) {
  MOE_SKIP_WITHOUT_GPU();
  std::string error;
  RouterLayerShape s = SmallShape();
  s.hidden = 100;  // rows of 200 bytes: not a multiple of 16
  EXPECT_EQ(RouterLayer::Create(s, 16, &error), nullptr);
  EXPECT_NE(error.find("multiples of 8"), std::string::npos) << error;
  s = SmallShape();
  s.gating.top_k = 9;
  EXPECT_EQ(RouterLayer::Create(s, 16, &error), nullptr);
  EXPECT_NE(error.find("top_k"), std::string::npos) << error;
}

}  // namespace
}  // namespace moe::cuda

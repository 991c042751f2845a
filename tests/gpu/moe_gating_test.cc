#include "engine/cuda/moe_gating.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "tests/gpu/gpu_test_util.h"

namespace moe::cuda {
namespace {

using ::moe::cuda::testing::DeviceArray;
using ::moe::cuda::testing::RelativeError;

// Weights: float32 exponentials and sums against double, ~1e-6 relative.
// Expert ids are compared exactly.
constexpr double kTolerance = 1e-5;

struct Routing {
  std::vector<int32_t> ids;
  std::vector<double> weights;
};

// From the definition: (optionally) z / (std(z, unbiased) / gate_norm_std)
// unless std is 0, softmax over all experts, the top_k in descending
// probability (lower id first on ties), renormalized.
Routing Reference(const std::vector<float>& logits, int n,
                  const GatingOptions& options) {
  const int experts = options.experts;
  Routing routing;
  for (int i = 0; i < n; ++i) {
    std::vector<double> z(
        logits.begin() + static_cast<size_t>(i) * experts,
        logits.begin() + static_cast<size_t>(i + 1) * experts);
    if (options.use_logits_norm && experts > 1) {
      const double mean = std::accumulate(z.begin(), z.end(), 0.0) / experts;
      double variance = 0.0;
      for (double v : z) variance += (v - mean) * (v - mean);
      const double deviation = std::sqrt(variance / (experts - 1));
      if (deviation > 0.0) {
        for (double& v : z) v /= deviation / options.gate_norm_std;
      }
    }
    const double max = *std::max_element(z.begin(), z.end());
    std::vector<double> prob(experts);
    for (int e = 0; e < experts; ++e) prob[e] = std::exp(z[e] - max);
    std::vector<int32_t> order(experts);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int32_t a, int32_t b) { return prob[a] > prob[b]; });
    double total = 0.0;
    for (int j = 0; j < options.top_k; ++j) total += prob[order[j]];
    for (int j = 0; j < options.top_k; ++j) {
      routing.ids.push_back(order[j]);
      routing.weights.push_back(prob[order[j]] / total);
    }
  }
  return routing;
}

struct GpuRouting {
  std::vector<int32_t> ids;
  std::vector<float> weights;
};

GpuRouting Route(const std::vector<float>& logits, int n,
                 const GatingOptions& options) {
  DeviceArray<float> device_logits(logits);
  DeviceArray<int32_t> ids(static_cast<size_t>(n) * options.top_k);
  DeviceArray<float> weights(static_cast<size_t>(n) * options.top_k);
  EXPECT_EQ(cudaSuccess, SelectExperts(device_logits.get(), n, options,
                                       ids.get(), weights.get(), nullptr));
  return {ids.ToHost(), weights.ToHost()};
}

// Logits without near-ties, so that float32 and double agree on the order:
// a random permutation of evenly spaced levels, each moved by at most a
// quarter of the spacing, plus a random offset per row.
std::vector<float> DistinctLogits(int n, int experts, uint32_t seed) {
  std::mt19937 engine(seed);
  std::uniform_real_distribution<float> jitter(-0.25f, 0.25f);
  std::normal_distribution<float> offset(0.0f, 3.0f);
  const float spacing = 4.0f / experts;
  std::vector<float> logits;
  std::vector<int> levels(experts);
  for (int i = 0; i < n; ++i) {
    std::iota(levels.begin(), levels.end(), 0);
    std::shuffle(levels.begin(), levels.end(), engine);
    const float row_offset = offset(engine);
    for (int level : levels) {
      logits.push_back(row_offset + (level + jitter(engine)) * spacing);
    }
  }
  return logits;
}

struct Case {
  int n;
  GatingOptions options;
};

TEST(MoeGatingTest, MatchesFloat64Reference) {
  MOE_SKIP_WITHOUT_GPU();
  // Skywork-MoE (16 experts, top-2, logit normalization), Mixtral (8,
  // top-2), the limits (64 experts, top-8 and top-32), odd sizes (33
  // experts use the second value of only one lane), one expert.
  const Case cases[] = {
      {17, {16, 2, true, 1.0f}},   {1000, {16, 2, true, 1.0f}},
      {3, {8, 2, false, 1.0f}},    {1, {64, 8, true, 0.5f}},
      {17, {64, 32, false, 1.0f}}, {5, {33, 3, false, 1.0f}},
      {3, {33, 3, true, 2.0f}},    {4, {1, 1, true, 1.0f}}};
  uint32_t seed = 1;
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message()
                 << "n " << c.n << " experts " << c.options.experts << " top_k "
                 << c.options.top_k << " norm " << c.options.use_logits_norm);
    const std::vector<float> logits =
        DistinctLogits(c.n, c.options.experts, seed++);
    const Routing expected = Reference(logits, c.n, c.options);
    const GpuRouting got = Route(logits, c.n, c.options);
    EXPECT_EQ(expected.ids, got.ids);
    EXPECT_LT(RelativeError(got.weights, expected.weights), kTolerance);
  }
}

TEST(MoeGatingTest, BreaksTiesToTheLowerExpertId) {
  MOE_SKIP_WITHOUT_GPU();
  constexpr int kExperts = 16;
  std::vector<float> logits = DistinctLogits(3, kExperts, 9);
  float* row0 = logits.data();
  float* row1 = logits.data() + kExperts;
  float* row2 = logits.data() + 2 * kExperts;
  // Row 0: all equal, so the std is 0 and the normalization must be skipped.
  std::fill(row0, row0 + kExperts, 0.7f);
  // Row 1: the two largest are equal, at experts 11 and 3.
  row1[11] = row1[3] = 50.0f;
  // Row 2: a clear first (expert 0), then a tie between experts 9 and 4.
  row2[0] = 60.0f;
  row2[9] = row2[4] = 50.0f;
  const std::vector<int32_t> expected_ids = {0, 1, 3, 11, 0, 4};
  for (bool norm : {false, true}) {
    SCOPED_TRACE(::testing::Message() << "norm " << norm);
    const GatingOptions options = {kExperts, 2, norm, 1.0f};
    const GpuRouting got = Route(logits, 3, options);
    EXPECT_EQ(expected_ids, got.ids);
    EXPECT_EQ(expected_ids, Reference(logits, 3, options).ids);
    // Equal probabilities renormalize to exactly one half each.
    for (int j = 0; j < 4; ++j) EXPECT_EQ(0.5f, got.weights[j]) << j;
  }
}

// A row with a NaN or an infinite logit gets no experts (kNoExpert, weight
// 0); the rows beside it are routed as the reference routes them. Expert 40
// of 48 sits in a lane's second value.
TEST(MoeGatingTest, ANonFiniteRowGetsNoExperts) {
  MOE_SKIP_WITHOUT_GPU();
  constexpr int kExperts = 48;
  constexpr int kRows = 5;
  std::vector<float> logits = DistinctLogits(kRows, kExperts, 12);
  logits[1 * kExperts + 3] = std::numeric_limits<float>::quiet_NaN();
  logits[3 * kExperts + 40] = std::numeric_limits<float>::infinity();
  for (bool norm : {false, true}) {
    SCOPED_TRACE(::testing::Message() << "norm " << norm);
    const GatingOptions options = {kExperts, 2, norm, 1.0f};
    const GpuRouting got = Route(logits, kRows, options);
    for (int row : {0, 2, 4}) {
      const std::vector<float> alone(logits.begin() + row * kExperts,
                                     logits.begin() + (row + 1) * kExperts);
      const Routing expected = Reference(alone, 1, options);
      for (int j = 0; j < 2; ++j) {
        EXPECT_EQ(expected.ids[j], got.ids[row * 2 + j]) << "row " << row;
        EXPECT_NEAR(expected.weights[j], got.weights[row * 2 + j], kTolerance)
            << "row " << row;
      }
    }
    for (int row : {1, 3}) {
      for (int j = 0; j < 2; ++j) {
        EXPECT_EQ(kNoExpert, got.ids[row * 2 + j]) << "row " << row;
        EXPECT_EQ(0.0f, got.weights[row * 2 + j]) << "row " << row;
      }
    }
  }
}

TEST(MoeGatingTest, RejectsBadArguments) {
  MOE_SKIP_WITHOUT_GPU();
  DeviceArray<float> logits(128);
  DeviceArray<int32_t> ids(64);
  DeviceArray<float> weights(64);
  auto select = [&](int n, const GatingOptions& options) {
    return SelectExperts(logits.get(), n, options, ids.get(), weights.get(),
                         nullptr);
  };
  EXPECT_EQ(cudaErrorInvalidValue, select(-1, {16, 2, false, 1.0f}));
  EXPECT_EQ(cudaErrorInvalidValue, select(1, {0, 1, false, 1.0f}));
  EXPECT_EQ(cudaErrorInvalidValue, select(1, {65, 2, false, 1.0f}));
  EXPECT_EQ(cudaErrorInvalidValue, select(1, {16, 0, false, 1.0f}));
  EXPECT_EQ(cudaErrorInvalidValue, select(1, {16, 17, false, 1.0f}));
  EXPECT_EQ(cudaErrorInvalidValue, select(1, {64, 33, false, 1.0f}));
  EXPECT_EQ(cudaErrorInvalidValue, select(1, {16, 2, true, 0.0f}));
  EXPECT_EQ(cudaErrorInvalidValue,
            SelectExperts(nullptr, 1, {16, 2, false, 1.0f}, ids.get(),
                          weights.get(), nullptr));
  EXPECT_EQ(cudaSuccess, select(0, {16, 2, false, 1.0f}));
}

}  // namespace
}  // namespace moe::cuda

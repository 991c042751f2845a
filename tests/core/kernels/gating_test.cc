#include "core/kernels/gating.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "core/model/model_config.h"
#include "gtest/gtest.h"

namespace moe {
namespace {

struct Routing {
  std::vector<int32_t> ids;
  std::vector<double> weights;
};

// The gating of one row, in double, from DESIGN.md: Skywork-MoE divides the
// logits by std(logits, unbiased) / gate_norm_std (a zero std leaves them
// alone); then softmax over all experts, the top k (ties to the lower id),
// weights renormalized to sum to 1.
Routing ReferenceGate(const ModelConfig& config, const float* logits) {
  const int experts = config.num_experts;
  std::vector<double> z(logits, logits + experts);
  if (config.use_logits_norm && experts > 1) {
    const double mean = std::accumulate(z.begin(), z.end(), 0.0) / experts;
    double squares = 0.0;
    for (double v : z) squares += (v - mean) * (v - mean);
    const double std = std::sqrt(squares / (experts - 1));
    if (std > 0.0) {
      for (double& v : z) v = v / (std / config.gate_norm_std);
    }
  }
  const double max = *std::max_element(z.begin(), z.end());
  std::vector<double> p(experts);
  double total = 0.0;
  for (int e = 0; e < experts; ++e) total += p[e] = std::exp(z[e] - max);
  for (double& v : p) v /= total;
  std::vector<int32_t> order(experts);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return p[a] > p[b]; });
  Routing routing;
  double kept = 0.0;
  for (int j = 0; j < config.top_k; ++j) kept += p[order[j]];
  for (int j = 0; j < config.top_k; ++j) {
    routing.ids.push_back(order[j]);
    routing.weights.push_back(p[order[j]] / kept);
  }
  return routing;
}

ModelConfig GateConfig(Architecture architecture, int experts, int top_k) {
  ModelConfig config;
  config.architecture = architecture;
  config.num_experts = experts;
  config.top_k = top_k;
  if (architecture == Architecture::kSkyworkMoe) config.use_logits_norm = true;
  return config;
}

std::vector<float> RandomLogits(int64_t n, int experts, double scale,
                                uint64_t seed) {
  std::mt19937_64 generator(seed);
  std::normal_distribution<float> normal(0.0f, static_cast<float>(scale));
  std::vector<float> logits(static_cast<size_t>(n * experts));
  for (float& v : logits) v = normal(generator);
  return logits;
}

// Runs SelectExperts on n rows and compares each with the reference.
void CheckAgainstReference(const ModelConfig& config,
                           const std::vector<float>& logits) {
  const int experts = config.num_experts;
  const int k = config.top_k;
  const int64_t n = static_cast<int64_t>(logits.size()) / experts;
  std::vector<int32_t> ids(static_cast<size_t>(n * k), -1);
  std::vector<float> weights(static_cast<size_t>(n * k), -1.0f);
  SelectExperts(config, logits.data(), n, ids.data(), weights.data());
  for (int64_t i = 0; i < n; ++i) {
    SCOPED_TRACE(::testing::Message() << "row " << i);
    const Routing want = ReferenceGate(config, logits.data() + i * experts);
    double sum = 0.0;
    for (int j = 0; j < k; ++j) {
      EXPECT_EQ(ids[i * k + j], want.ids[j]) << "slot " << j;
      // Float softmax against double: a few float ulps.
      EXPECT_NEAR(weights[i * k + j], want.weights[j], 2e-6) << "slot " << j;
      sum += weights[i * k + j];
    }
    EXPECT_NEAR(sum, 1.0, 1e-6);
  }
}

TEST(GatingTest, MixtralTop2MatchesReference) {
  const ModelConfig config = GateConfig(Architecture::kMixtral, 8, 2);
  CheckAgainstReference(config, RandomLogits(64, 8, 1.5, 1));
}

TEST(GatingTest, MixtralTop1MatchesReference) {
  const ModelConfig config = GateConfig(Architecture::kMixtral, 8, 1);
  const std::vector<float> logits = RandomLogits(64, 8, 1.5, 2);
  CheckAgainstReference(config, logits);
  // With one expert its weight is exactly 1.
  std::vector<int32_t> ids(64);
  std::vector<float> weights(64);
  SelectExperts(config, logits.data(), 64, ids.data(), weights.data());
  for (float w : weights) EXPECT_EQ(w, 1.0f);
}

TEST(GatingTest, MixtralTop3OfSixMatchesReference) {
  const ModelConfig config = GateConfig(Architecture::kMixtral, 6, 3);
  CheckAgainstReference(config, RandomLogits(32, 6, 3.0, 3));
}

TEST(GatingTest, SkyworkTop2MatchesReference) {
  ModelConfig config = GateConfig(Architecture::kSkyworkMoe, 16, 2);
  for (double target_std : {1.0, 2.5, 0.3}) {
    SCOPED_TRACE(target_std);
    config.gate_norm_std = target_std;
    // Logits with a std far from the target, so the normalization matters.
    CheckAgainstReference(config, RandomLogits(48, 16, 4.0, 4));
    CheckAgainstReference(config, RandomLogits(48, 16, 0.1, 5));
  }
}

TEST(GatingTest, SkyworkTop1MatchesReference) {
  const ModelConfig config = GateConfig(Architecture::kSkyworkMoe, 16, 1);
  CheckAgainstReference(config, RandomLogits(48, 16, 2.0, 6));
}

TEST(GatingTest, SkyworkNormalizationChangesTheWeights) {
  // The normalization must be applied: with logits of std 4 and target 1,
  // Mixtral-style weights differ clearly from Skywork-MoE's.
  ModelConfig skywork = GateConfig(Architecture::kSkyworkMoe, 16, 2);
  ModelConfig plain = skywork;
  plain.use_logits_norm = false;
  const std::vector<float> logits = RandomLogits(1, 16, 4.0, 7);
  int32_t ids_a[2], ids_b[2];
  float weights_a[2], weights_b[2];
  SelectExperts(skywork, logits.data(), 1, ids_a, weights_a);
  SelectExperts(plain, logits.data(), 1, ids_b, weights_b);
  EXPECT_EQ(ids_a[0], ids_b[0]);  // a positive scale keeps the order
  EXPECT_EQ(ids_a[1], ids_b[1]);
  EXPECT_GT(std::fabs(weights_a[0] - weights_b[0]), 1e-3);
  CheckAgainstReference(plain, logits);
}

TEST(GatingTest, SkyworkZeroStdLeavesLogitsAlone) {
  // All logits equal: std 0 must not divide by zero; the softmax is uniform,
  // so ties pick experts 0 and 1 with weight 1/2 each.
  const ModelConfig config = GateConfig(Architecture::kSkyworkMoe, 16, 2);
  const std::vector<float> logits(16, 0.7f);
  int32_t ids[2] = {-1, -1};
  float weights[2] = {0, 0};
  SelectExperts(config, logits.data(), 1, ids, weights);
  EXPECT_EQ(ids[0], 0);
  EXPECT_EQ(ids[1], 1);
  EXPECT_FLOAT_EQ(weights[0], 0.5f);
  EXPECT_FLOAT_EQ(weights[1], 0.5f);
}

TEST(GatingTest, TiesPickTheLowerId) {
  for (Architecture architecture :
       {Architecture::kMixtral, Architecture::kSkyworkMoe}) {
    SCOPED_TRACE(ArchitectureName(architecture));
    const ModelConfig top2 = GateConfig(architecture, 6, 2);
    // Three-way tie for the maximum at 1, 3 and 4.
    const float logits[6] = {0.5f, 2.0f, -1.0f, 2.0f, 2.0f, 1.0f};
    int32_t ids[2];
    float weights[2];
    SelectExperts(top2, logits, 1, ids, weights);
    EXPECT_EQ(ids[0], 1);
    EXPECT_EQ(ids[1], 3);
    EXPECT_FLOAT_EQ(weights[0], 0.5f);
    EXPECT_FLOAT_EQ(weights[1], 0.5f);

    const ModelConfig top1 = GateConfig(architecture, 6, 1);
    const float reversed[6] = {1.0f, 2.0f, 2.0f, -1.0f, 2.0f, 0.5f};
    SelectExperts(top1, reversed, 1, ids, weights);
    EXPECT_EQ(ids[0], 1);
    EXPECT_EQ(weights[0], 1.0f);

    // A tie for second place only.
    const float second[6] = {0.0f, 0.0f, 3.0f, 1.0f, 0.0f, 1.0f};
    SelectExperts(top2, second, 1, ids, weights);
    EXPECT_EQ(ids[0], 2);
    EXPECT_EQ(ids[1], 3);
    EXPECT_GT(weights[0], weights[1]);
  }
}

TEST(GatingTest, HandlesLargeLogitsWithoutOverflow) {
  const ModelConfig config = GateConfig(Architecture::kMixtral, 4, 2);
  const float logits[4] = {1000.0f, 999.0f, -1000.0f, 998.0f};
  int32_t ids[2];
  float weights[2];
  SelectExperts(config, logits, 1, ids, weights);
  EXPECT_EQ(ids[0], 0);
  EXPECT_EQ(ids[1], 1);
  // Renormalized over the two: 1 / (1 + e^-1) and e^-1 / (1 + e^-1).
  EXPECT_NEAR(weights[0], 1.0 / (1.0 + std::exp(-1.0)), 1e-6);
  EXPECT_NEAR(weights[1], std::exp(-1.0) / (1.0 + std::exp(-1.0)), 1e-6);
}

}  // namespace
}  // namespace moe

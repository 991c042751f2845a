#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "tests/support/expect_has_substr.h"

namespace moe {
namespace {

std::vector<float> RandomLogits(int vocab, uint64_t seed) {
  std::mt19937_64 generator(seed);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> logits(vocab);
  for (float& v : logits) v = normal(generator);
  return logits;
}

int32_t ArgMax(const std::vector<float>& logits) {
  int32_t best = 0;
  for (int32_t i = 1; i < static_cast<int32_t>(logits.size()); ++i) {
    if (logits[i] > logits[best]) best = i;
  }
  return best;
}

// Logits whose softmax (at temperature 1) is `probs`.
std::vector<float> LogitsOf(const std::vector<double>& probs) {
  std::vector<float> logits;
  for (double p : probs) logits.push_back(static_cast<float>(std::log(p)));
  return logits;
}

SamplingParams Params(float temperature, int top_k, float top_p,
                      uint64_t seed) {
  SamplingParams params;
  params.temperature = temperature;
  params.top_k = top_k;
  params.top_p = top_p;
  params.seed = seed;
  return params;
}

// Token counts over `draws` samples.
std::map<int32_t, int> Histogram(const SamplingParams& params,
                                 const std::vector<float>& logits, int draws) {
  Sampler sampler(params);
  std::map<int32_t, int> counts;
  for (int i = 0; i < draws; ++i) ++counts[sampler.Sample(logits)];
  return counts;
}

TEST(SamplerTest, GreedyReturnsArgMax) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    const std::vector<float> logits = RandomLogits(1000, seed);
    Sampler sampler(Params(0.0f, 0, 1.0f, seed));
    EXPECT_EQ(sampler.Sample(logits), ArgMax(logits)) << seed;
  }
  const std::vector<float> negative = {-5.0f, -3.0f, -4.0f, -7.0f};
  Sampler sampler(SamplingParams{});  // defaults are greedy
  EXPECT_EQ(sampler.Sample(negative), 1);
}

TEST(SamplerTest, GreedyBreaksTiesToTheLowestId) {
  Sampler sampler(SamplingParams{});
  EXPECT_EQ(sampler.Sample(std::vector<float>{1.0f, 3.0f, 3.0f, 2.0f}), 1);
  EXPECT_EQ(sampler.Sample(std::vector<float>{5.0f, 5.0f}), 0);
  EXPECT_EQ(sampler.Sample(std::vector<float>{0.0f, -1.0f, 0.5f, 0.5f, 0.5f}),
            2);
  // top_k / top_p do not change greedy.
  Sampler limited(Params(0.0f, 3, 0.5f, 1));
  EXPECT_EQ(limited.Sample(std::vector<float>{0.0f, 2.0f, 1.0f, 2.0f}), 1);
}

TEST(SamplerTest, TopKOneIsGreedyAtAnyTemperature) {
  const std::vector<float> logits = RandomLogits(500, 42);
  const int32_t best = ArgMax(logits);
  for (float temperature : {0.1f, 1.0f, 10.0f, 1000.0f}) {
    Sampler sampler(Params(temperature, 1, 1.0f, 7));
    for (int i = 0; i < 200; ++i) {
      ASSERT_EQ(sampler.Sample(logits), best) << temperature;
    }
  }
  // Ties: the lowest id, as greedy.
  Sampler sampler(Params(5.0f, 1, 1.0f, 7));
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(sampler.Sample(std::vector<float>{0.0f, 2.0f, 2.0f, 1.0f}), 1);
  }
}

TEST(SamplerTest, TopKRestrictsToTheKLargest) {
  const std::vector<float> logits = RandomLogits(20, 3);
  // The three largest, found here by sorting.
  std::vector<int32_t> order(20);
  for (int32_t i = 0; i < 20; ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  const std::set<int32_t> top3(order.begin(), order.begin() + 3);
  // A high temperature makes the rest likely if they were allowed.
  const std::map<int32_t, int> counts =
      Histogram(Params(20.0f, 3, 1.0f, 11), logits, 3000);
  for (const auto& [token, count] : counts) {
    EXPECT_TRUE(top3.count(token)) << "token " << token << " outside the top 3";
  }
  EXPECT_EQ(counts.size(), 3u);  // every one of the three is drawn

  // Without top_k the same temperature reaches far beyond the top 3.
  EXPECT_GT(Histogram(Params(20.0f, 0, 1.0f, 11), logits, 3000).size(), 10u);
  // top_k larger than the vocabulary is no limit.
  EXPECT_GT(Histogram(Params(20.0f, 1000, 1.0f, 11), logits, 3000).size(), 10u);
}

TEST(SamplerTest, TopPRestrictsToTheNucleus) {
  // Probabilities 0.05, 0.5, 0.15, 0.3 (ids not in probability order).
  const std::vector<float> logits = LogitsOf({0.05, 0.5, 0.15, 0.3});
  constexpr int kDraws = 5000;

  // 0.5 < 0.6 <= 0.5 + 0.3: tokens 1 and 3, renormalized to 5/8 and 3/8.
  std::map<int32_t, int> counts =
      Histogram(Params(1.0f, 0, 0.6f, 1), logits, kDraws);
  EXPECT_EQ(counts.count(0), 0u);
  EXPECT_EQ(counts.count(2), 0u);
  EXPECT_NEAR(counts[1] / static_cast<double>(kDraws), 0.625, 0.03);
  EXPECT_NEAR(counts[3] / static_cast<double>(kDraws), 0.375, 0.03);

  // 0.4 <= 0.5: only token 1.
  counts = Histogram(Params(1.0f, 0, 0.4f, 2), logits, kDraws);
  EXPECT_EQ(counts.size(), 1u);
  EXPECT_EQ(counts[1], kDraws);

  // 0.8 < 0.9 <= 0.95: tokens 1, 3, 2, never 0.
  counts = Histogram(Params(1.0f, 0, 0.9f, 3), logits, kDraws);
  EXPECT_EQ(counts.count(0), 0u);
  EXPECT_NEAR(counts[2] / static_cast<double>(kDraws), 0.15 / 0.95, 0.03);

  // top_p 1: everything.
  counts = Histogram(Params(1.0f, 0, 1.0f, 4), logits, kDraws);
  EXPECT_EQ(counts.size(), 4u);
}

TEST(SamplerTest, TemperatureAppliesBeforeTopP) {
  // At temperature 1, token 0 alone holds 0.5 >= 0.45. At temperature 2 the
  // probabilities are proportional to sqrt(p): token 0 holds 0.379 < 0.45,
  // so token 1 joins the nucleus.
  const std::vector<float> logits = LogitsOf({0.5, 0.3, 0.15, 0.05});
  std::map<int32_t, int> counts =
      Histogram(Params(1.0f, 0, 0.45f, 5), logits, 2000);
  EXPECT_EQ(counts.size(), 1u);
  EXPECT_EQ(counts[0], 2000);
  counts = Histogram(Params(2.0f, 0, 0.45f, 5), logits, 2000);
  EXPECT_EQ(counts.size(), 2u);
  EXPECT_GT(counts[1], 0);
}

TEST(SamplerTest, TopPAppliesToTheTopKRenormalizedDistribution) {
  // As in HF transformers and vLLM: after top_k = 2 the probabilities are
  // 0.4 / 0.7 = 0.571 and 0.3 / 0.7, so top_p 0.5 keeps only token 0.
  const std::vector<float> logits = LogitsOf({0.4, 0.3, 0.2, 0.1});
  const std::map<int32_t, int> counts =
      Histogram(Params(1.0f, 2, 0.5f, 6), logits, 2000);
  EXPECT_EQ(counts.size(), 1u);
  EXPECT_EQ(counts.count(0), 1u);
}

std::vector<int32_t> Draws(std::optional<uint64_t> seed, int count) {
  SamplingParams params;
  params.temperature = 1.0f;
  params.seed = seed;
  Sampler sampler(params);
  const std::vector<float> flat(1000, 0.0f);
  std::vector<int32_t> tokens;
  for (int i = 0; i < count; ++i) tokens.push_back(sampler.Sample(flat));
  return tokens;
}

TEST(SamplerTest, SameSeedSameSequence) {
  EXPECT_EQ(Draws(1234, 50), Draws(1234, 50));
  EXPECT_EQ(Draws(0, 50), Draws(0, 50));
}

TEST(SamplerTest, DifferentSeedsDifferentSequences) {
  EXPECT_NE(Draws(1234, 50), Draws(1235, 50));
  EXPECT_NE(Draws(1, 50), Draws(2, 50));
  // Unseeded samplers pick their own seeds.
  EXPECT_NE(Draws(std::nullopt, 50), Draws(std::nullopt, 50));
  // A flat distribution over 1000 tokens: 50 draws are not all the same.
  const std::vector<int32_t> draws = Draws(99, 50);
  EXPECT_GT(std::set<int32_t>(draws.begin(), draws.end()).size(), 40u);
}

// 20000 draws: the standard deviation of a frequency is at most
// sqrt(0.25 / 20000) = 0.0035, so an absolute tolerance of 0.02 is over 5
// standard deviations.
void CheckFrequencies(float temperature, uint64_t seed) {
  const std::vector<float> logits = {0.0f, 1.0f, -0.5f, 0.3f};
  constexpr int kDraws = 20000;
  const std::map<int32_t, int> counts =
      Histogram(Params(temperature, 0, 1.0f, seed), logits, kDraws);
  double total = 0.0;
  std::vector<double> probs;
  for (float logit : logits) {
    probs.push_back(std::exp(static_cast<double>(logit) / temperature));
    total += probs.back();
  }
  for (int32_t token = 0; token < 4; ++token) {
    const auto it = counts.find(token);
    const double frequency =
        it == counts.end() ? 0.0 : it->second / double{kDraws};
    EXPECT_NEAR(frequency, probs[token] / total, 0.02)
        << "token " << token << " temperature " << temperature;
  }
}

TEST(SamplerTest, FrequenciesMatchSoftmax) {
  CheckFrequencies(1.0f, 21);
  CheckFrequencies(0.5f, 22);
  CheckFrequencies(3.0f, 23);
}

TEST(ValidateSamplingParamsTest, AcceptsValidParams) {
  EXPECT_TRUE(ValidateSamplingParams(SamplingParams{}).ok());
  EXPECT_TRUE(ValidateSamplingParams(Params(0.7f, 50, 0.95f, 1)).ok());
  EXPECT_TRUE(ValidateSamplingParams(Params(0.0f, 0, 1.0f, 1)).ok());
  EXPECT_TRUE(ValidateSamplingParams(Params(2.0f, 1, 0.01f, 1)).ok());
}

TEST(ValidateSamplingParamsTest, RejectsBadTemperature) {
  for (float temperature :
       {-0.5f, -1e-6f, std::numeric_limits<float>::quiet_NaN(),
        std::numeric_limits<float>::infinity()}) {
    const absl::Status status =
        ValidateSamplingParams(Params(temperature, 0, 1.0f, 1));
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << temperature;
    EXPECT_HAS_SUBSTR(status.message(), "temperature");
  }
}

TEST(ValidateSamplingParamsTest, RejectsBadTopP) {
  for (float top_p :
       {0.0f, -0.1f, 1.0001f, 2.0f, std::numeric_limits<float>::quiet_NaN()}) {
    const absl::Status status =
        ValidateSamplingParams(Params(1.0f, 0, top_p, 1));
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << top_p;
    EXPECT_HAS_SUBSTR(status.message(), "top_p");
  }
}

TEST(ValidateSamplingParamsTest, RejectsNegativeTopK) {
  for (int top_k : {-1, -100}) {
    const absl::Status status =
        ValidateSamplingParams(Params(1.0f, top_k, 1.0f, 1));
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << top_k;
    EXPECT_HAS_SUBSTR(status.message(), "top_k");
  }
}

}  // namespace
}  // namespace moe

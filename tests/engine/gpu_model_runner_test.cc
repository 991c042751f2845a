// The router's forward pass on a GPU against the float64 reference model:
// two sequences batched, each prefilled and then decoded a token at a time.
// Without a GPU (or CUDA) the tests skip, saying why.
#include "engine/gpu_model_runner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/model/model_weights.h"
#include "engine/local_expert_dispatch.h"
#include "tests/support/reference_model.h"
#include "tests/support/test_models.h"

namespace moe::testing {
namespace {

// The GPU rounds the input of every product, and the cached keys and values,
// to BF16 (2^-9 relative each); through two layers the logits stay within
// about 1e-2 of the exact ones (max |difference| / max |logit| per row).
constexpr double kLogitTolerance = 3e-2;
// Routing decisions this close may flip under that rounding; positions from
// the first such one on are not compared.
constexpr double kRoutingTieTolerance = 2e-2;

double RelativeError(const float* logits, const std::vector<double>& expected) {
  double max_diff = 0.0, max_ref = 0.0;
  for (size_t i = 0; i < expected.size(); ++i) {
    max_diff = std::max(max_diff, std::fabs(logits[i] - expected[i]));
    max_ref = std::max(max_ref, std::fabs(expected[i]));
  }
  return max_diff / max_ref;
}

class GpuModelRunnerTest : public ::testing::TestWithParam<TestModelSpec> {
 protected:
  void SetUp() override {
    dir_ = MakeTestModel(GetParam());
    Open(dir_);
  }

  // runner_ on the model in `dir`; skips without a GPU.
  void Open(const std::string& dir) {
    runner_.reset();
    dispatch_.reset();
    auto weights = ModelWeights::Load(dir);
    ASSERT_TRUE(weights.ok()) << weights.status();
    weights_ = std::move(*weights);
    dispatch_ = std::make_unique<LocalExpertDispatch>(*weights_, pool_);
    auto runner = NewGpuModelRunner(*weights_, *dispatch_, /*device=*/0);
    if (absl::IsFailedPrecondition(runner.status())) {
      GTEST_SKIP() << runner.status().message();
    }
    ASSERT_TRUE(runner.ok()) << runner.status();
    runner_ = std::move(*runner);
  }

  // The last token's logits of `tokens` are the reference's at that
  // position (unless a routing near-tie makes them incomparable).
  void ExpectLastLogitsMatchReference(const std::vector<int32_t>& tokens,
                                      const std::vector<float>& logits) {
    auto reference = ReferenceModel::Load(dir_);
    ASSERT_NE(reference, nullptr);
    const ReferenceModel::Output expected = reference->Run(tokens);
    const auto& margins = expected.routing_margin;
    if (*std::min_element(margins.begin(), margins.end()) >=
        kRoutingTieTolerance) {
      EXPECT_LT(RelativeError(logits.data(), expected.logits.back()),
                kLogitTolerance);
    }
  }

  std::string dir_;
  ThreadPool pool_{2};
  std::unique_ptr<ModelWeights> weights_;
  std::unique_ptr<LocalExpertDispatch> dispatch_;
  std::unique_ptr<ModelRunner> runner_;
};

TEST_P(GpuModelRunnerTest, BatchedPrefillAndDecodeMatchFloat64Reference) {
  auto reference = ReferenceModel::Load(dir_);
  ASSERT_NE(reference, nullptr);
  const int vocab = GetParam().vocab;
  const std::vector<int32_t> tokens[2] = {RandomTokens(20, vocab, 31),
                                          RandomTokens(13, vocab, 32)};
  const ReferenceModel::Output expected[2] = {reference->Run(tokens[0]),
                                              reference->Run(tokens[1])};
  // Step 0 prefills 12 and 5 tokens (every logit wanted), then each step
  // decodes one more token of each sequence.
  SequenceKvCache caches[2] = {runner_->NewCache(), runner_->NewCache()};
  int done[2] = {0, 0};
  int compared = 0;
  for (int step = 0; done[1] < 13; ++step) {
    std::vector<SequenceStep> steps;
    for (int s = 0; s < 2; ++s) {
      const int count = step == 0 ? (s == 0 ? 12 : 5) : 1;
      steps.push_back({std::span(tokens[s]).subspan(done[s], count), &caches[s],
                       LogitsFor::kAllTokens});
    }
    auto results = runner_->ForwardBatch(steps);
    for (int s = 0; s < 2; ++s) {
      ASSERT_TRUE(results[s].ok()) << results[s].status();
      const int count = static_cast<int>(steps[s].tokens.size());
      ASSERT_EQ(results[s]->size(), size_t(count) * vocab);
      for (int i = 0; i < count; ++i) {
        const int position = done[s] + i;
        const auto& margins = expected[s].routing_margin;
        if (*std::min_element(margins.begin(), margins.begin() + position + 1) <
            kRoutingTieTolerance) {
          continue;  // a near-tie at or before this position
        }
        ++compared;
        EXPECT_LT(RelativeError(results[s]->data() + i * vocab,
                                expected[s].logits[position]),
                  kLogitTolerance)
            << "sequence " << s << " position " << position;
      }
      done[s] += count;
      EXPECT_EQ(caches[s].length(), done[s]);
    }
  }
  EXPECT_GE(compared, 16) << "too many routing near-ties to compare";
}

// A step with a bad token fails alone and keeps its cache; the other step
// of the batch goes on and gets its last token's logits.
TEST_P(GpuModelRunnerTest, ABadStepFailsAlone) {
  const int vocab = GetParam().vocab;
  const std::vector<int32_t> good = RandomTokens(6, vocab, 41);
  const std::vector<int32_t> bad = {3, vocab + 5};
  SequenceKvCache good_cache = runner_->NewCache();
  SequenceKvCache bad_cache = runner_->NewCache();
  const SequenceStep steps[] = {{bad, &bad_cache, LogitsFor::kLastToken},
                                {good, &good_cache, LogitsFor::kLastToken}};
  auto results = runner_->ForwardBatch(steps);
  EXPECT_EQ(results[0].status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad_cache.length(), 0);
  ASSERT_TRUE(results[1].ok()) << results[1].status();
  ASSERT_EQ(results[1]->size(), size_t(vocab));
  EXPECT_EQ(good_cache.length(), 6);
  ExpectLastLogitsMatchReference(good, *results[1]);
}

// A token whose embedding is NaN gives its rows non-finite gate logits: its
// step fails at the gate, naming the layer, before its rows reach the
// experts; the step batched with it gets the reference's logits.
TEST_P(GpuModelRunnerTest, ANonFiniteRowFailsAlone) {
  const int vocab = GetParam().vocab;
  constexpr int32_t kNanToken = 17;
  // Every byte 0xFF: a NaN in BF16 and in float32.
  Open(CopyWithTensorBytes(dir_, "model.embed_tokens.weight", '\xFF',
                           "_nan_token", kNanToken));
  std::vector<int32_t> good = RandomTokens(6, vocab, 43);
  std::replace(good.begin(), good.end(), kNanToken, kNanToken + 1);
  const std::vector<int32_t> bad = {3, kNanToken, 5};
  SequenceKvCache good_cache = runner_->NewCache();
  SequenceKvCache bad_cache = runner_->NewCache();
  const SequenceStep steps[] = {{bad, &bad_cache, LogitsFor::kLastToken},
                                {good, &good_cache, LogitsFor::kLastToken}};
  auto results = runner_->ForwardBatch(steps);
  ASSERT_FALSE(results[0].ok());
  EXPECT_NE(results[0].status().message().find("non-finite gate logit"),
            std::string::npos)
      << results[0].status();
  EXPECT_EQ(bad_cache.length(), 0);
  ASSERT_TRUE(results[1].ok()) << results[1].status();
  EXPECT_EQ(good_cache.length(), 6);
  ExpectLastLogitsMatchReference(good, *results[1]);
}

// Two micro-batches (the steps split in two that take turns) give what one
// batch gives.
TEST_P(GpuModelRunnerTest, TwoMicroBatchesGiveWhatOneGives) {
  ModelRunnerOptions options;
  options.micro_batches = 2;
  auto split = NewGpuModelRunner(*weights_, *dispatch_, /*device=*/0, options);
  ASSERT_TRUE(split.ok()) << split.status();
  const int vocab = GetParam().vocab;
  const std::vector<int32_t> a = RandomTokens(7, vocab, 51);
  const std::vector<int32_t> b = RandomTokens(4, vocab, 52);
  std::vector<std::vector<float>> logits[2];
  ModelRunner* runners[2] = {runner_.get(), split->get()};
  for (int r = 0; r < 2; ++r) {
    SequenceKvCache cache_a = runners[r]->NewCache();
    SequenceKvCache cache_b = runners[r]->NewCache();
    const SequenceStep steps[] = {{a, &cache_a, LogitsFor::kAllTokens},
                                  {b, &cache_b, LogitsFor::kAllTokens}};
    for (auto& result : runners[r]->ForwardBatch(steps)) {
      ASSERT_TRUE(result.ok()) << result.status();
      logits[r].push_back(*result);
    }
  }
  EXPECT_EQ((*split)->counters().split_passes, 1);
  EXPECT_EQ(runner_->counters().split_passes, 0);
  for (int s = 0; s < 2; ++s) {
    ASSERT_EQ(logits[0][s].size(), logits[1][s].size());
    // The same arithmetic, though cuBLASLt may pick another algorithm for
    // the other row count.
    const std::vector<double> reference(logits[0][s].begin(),
                                        logits[0][s].end());
    for (size_t row = 0; row * vocab < reference.size(); ++row) {
      EXPECT_LT(RelativeError(
                    logits[1][s].data() + row * vocab,
                    std::vector<double>(reference.begin() + row * vocab,
                                        reference.begin() + (row + 1) * vocab)),
                1e-3)
          << "step " << s << " row " << row;
    }
  }
}

// The GPU path computes a one-layer gate only, and says so before it looks
// for a GPU.
TEST(GpuModelRunnerGateTest, ATwoLayerGateIsRefused) {
  auto weights = ModelWeights::Load(MakeTestModel(TestModelSpec{
      .architecture = Architecture::kSkyworkMoe, .two_layer_gate = true}));
  ASSERT_TRUE(weights.ok()) << weights.status();
  ThreadPool pool(2);
  LocalExpertDispatch dispatch(**weights, pool);
  auto runner = NewGpuModelRunner(**weights, dispatch, /*device=*/0);
  if (absl::IsFailedPrecondition(runner.status())) {
    GTEST_SKIP() << runner.status().message();  // a build without CUDA
  }
  EXPECT_EQ(runner.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(runner.status().message().find("moe_2layer_gate"),
            std::string::npos)
      << runner.status();
}

INSTANTIATE_TEST_SUITE_P(
    Models, GpuModelRunnerTest,
    ::testing::Values(TestModelSpec{.architecture = Architecture::kMixtral},
                      TestModelSpec{.architecture = Architecture::kSkyworkMoe,
                                    .kv_heads = 4},
                      TestModelSpec{.architecture = Architecture::kMixtral,
                                    .format = WeightFormat::kFp8}),
    [](const ::testing::TestParamInfo<TestModelSpec>& info) {
      return info.param.Name();
    });

}  // namespace
}  // namespace moe::testing

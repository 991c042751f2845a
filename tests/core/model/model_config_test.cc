#include "core/model/model_config.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/util/file_util.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/expect_has_substr.h"

namespace moe {
namespace {

using json = nlohmann::json;

constexpr char kSource[] = "/models/test/config.json";

// Mixtral-8x7B's config.json, abridged.
json MixtralJson() {
  return json::parse(R"({
    "architectures": ["MixtralForCausalLM"],
    "model_type": "mixtral",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "num_local_experts": 8,
    "num_experts_per_tok": 2,
    "vocab_size": 32000,
    "rms_norm_eps": 1e-05,
    "rope_theta": 1000000.0,
    "max_position_embeddings": 32768,
    "sliding_window": null,
    "tie_word_embeddings": false,
    "hidden_act": "silu",
    "bos_token_id": 1,
    "eos_token_id": 2,
    "torch_dtype": "bfloat16"
  })");
}

// Skywork-MoE-Base's config.json, abridged.
json SkyworkJson() {
  return json::parse(R"({
    "architectures": ["SkyworkForCausalLM"],
    "model_type": "skywork",
    "hidden_size": 4608,
    "intermediate_size": 12288,
    "num_hidden_layers": 52,
    "num_attention_heads": 36,
    "num_key_value_heads": 36,
    "num_experts": [16],
    "moe_use_logits_norm": true,
    "moe_gate_norm_std": 1.0,
    "moe_2layer_gate": false,
    "moe_use_mixtral_gating": false,
    "moe_feature_no_mul_topk": true,
    "vocab_size": 65536,
    "rms_norm_eps": 1e-06,
    "rope_theta": 10000,
    "max_position_embeddings": 8192,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "torch_dtype": "bfloat16"
  })");
}

absl::Status ParseError(const json& config) {
  return ParseModelConfig(config, kSource).status();
}

TEST(ModelConfigTest, ParsesMixtral) {
  absl::StatusOr<ModelConfig> config = ParseModelConfig(MixtralJson(), kSource);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->architecture, Architecture::kMixtral);
  EXPECT_EQ(config->hidden_size, 4096);
  EXPECT_EQ(config->intermediate_size, 14336);
  EXPECT_EQ(config->num_layers, 32);
  EXPECT_EQ(config->num_heads, 32);
  EXPECT_EQ(config->num_kv_heads, 8);
  EXPECT_EQ(config->head_dim, 128);  // hidden / heads when head_dim is absent
  EXPECT_EQ(config->vocab_size, 32000);
  EXPECT_EQ(config->num_experts, 8);
  EXPECT_EQ(config->top_k, 2);
  EXPECT_DOUBLE_EQ(config->rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(config->rope_theta, 1e6);
  EXPECT_EQ(config->max_position_embeddings, 32768);
  EXPECT_EQ(config->sliding_window, 0);  // null: whole context
  EXPECT_FALSE(config->tie_word_embeddings);
  EXPECT_FALSE(config->use_logits_norm);
  EXPECT_EQ(config->bos_token_id, 1);
  EXPECT_EQ(config->eos_token_ids, std::vector<int>({2}));
  EXPECT_EQ(config->weight_format, WeightFormat::kFloat);
}

TEST(ModelConfigTest, MixtralExpertCountsComeFromTheirKeys) {
  json j = MixtralJson();
  j["num_local_experts"] = 6;
  j["num_experts_per_tok"] = 3;
  absl::StatusOr<ModelConfig> config = ParseModelConfig(j, kSource);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->num_experts, 6);
  EXPECT_EQ(config->top_k, 3);
}

TEST(ModelConfigTest, MixtralWithoutExpertCountIsRejected) {
  json j = MixtralJson();
  j.erase("num_local_experts");
  const absl::Status status = ParseError(j);
  EXPECT_FALSE(status.ok());
  EXPECT_HAS_SUBSTR(status.message(), "num_local_experts");
}

TEST(ModelConfigTest, ExplicitHeadDimWins) {
  json j = MixtralJson();
  j["head_dim"] = 96;  // not hidden / heads
  absl::StatusOr<ModelConfig> config = ParseModelConfig(j, kSource);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->head_dim, 96);
}

TEST(ModelConfigTest, EosAsListAndSlidingWindow) {
  json j = MixtralJson();
  j["eos_token_id"] = {2, 7, 31999};
  j["sliding_window"] = 4096;
  absl::StatusOr<ModelConfig> config = ParseModelConfig(j, kSource);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->eos_token_ids, std::vector<int>({2, 7, 31999}));
  EXPECT_EQ(config->sliding_window, 4096);
}

TEST(ModelConfigTest, AbsentOptionalKeysKeepDefaults) {
  json j = MixtralJson();
  for (const char* key :
       {"num_key_value_heads", "sliding_window", "bos_token_id", "eos_token_id",
        "rms_norm_eps", "rope_theta"}) {
    j.erase(key);
  }
  absl::StatusOr<ModelConfig> config = ParseModelConfig(j, kSource);
  ASSERT_TRUE(config.ok()) << config.status();
  const ModelConfig defaults;
  EXPECT_EQ(config->num_kv_heads, 32);  // = num_attention_heads
  EXPECT_EQ(config->sliding_window, 0);
  EXPECT_EQ(config->bos_token_id, -1);
  EXPECT_TRUE(config->eos_token_ids.empty());
  EXPECT_EQ(config->rms_norm_eps, defaults.rms_norm_eps);
  EXPECT_EQ(config->rope_theta, defaults.rope_theta);
}

TEST(ModelConfigTest, ParsesSkyworkWithNumExpertsList) {
  absl::StatusOr<ModelConfig> config = ParseModelConfig(SkyworkJson(), kSource);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->architecture, Architecture::kSkyworkMoe);
  EXPECT_EQ(config->num_experts, 16);
  EXPECT_EQ(config->top_k, 2);  // implied
  EXPECT_TRUE(config->use_logits_norm);
  EXPECT_DOUBLE_EQ(config->gate_norm_std, 1.0);
  EXPECT_EQ(config->hidden_size, 4608);
  EXPECT_EQ(config->head_dim, 128);
  EXPECT_EQ(config->num_layers, 52);
  EXPECT_DOUBLE_EQ(config->rope_theta, 10000.0);
  EXPECT_DOUBLE_EQ(config->rms_norm_eps, 1e-6);
}

TEST(ModelConfigTest, ParsesSkyworkMoeSpelling) {
  json j = SkyworkJson();
  j["model_type"] = "skywork_moe";
  j["num_experts"] = 8;  // a plain integer
  j["moe_use_logits_norm"] = false;
  j["moe_gate_norm_std"] = 2.5;
  absl::StatusOr<ModelConfig> config = ParseModelConfig(j, kSource);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->architecture, Architecture::kSkyworkMoe);
  EXPECT_EQ(config->num_experts, 8);
  EXPECT_EQ(config->top_k, 2);
  EXPECT_FALSE(config->use_logits_norm);
  EXPECT_DOUBLE_EQ(config->gate_norm_std, 2.5);

  j["num_experts"] = {16};
  config = ParseModelConfig(j, kSource);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->num_experts, 16);
}

TEST(ModelConfigTest, DenseSkyworkIsRejected) {
  json j = SkyworkJson();
  j.erase("num_experts");
  j.erase("moe_use_logits_norm");
  j.erase("moe_gate_norm_std");
  const absl::Status status = ParseError(j);
  ASSERT_FALSE(status.ok());
  EXPECT_HAS_SUBSTR(status.message(), "dense");
  EXPECT_HAS_SUBSTR(status.message(), "Skywork-13B");
  EXPECT_HAS_SUBSTR(status.message(), kSource);
}

TEST(ModelConfigTest, SkyworkVariantsWeDoNotComputeAreRejectedByKey) {
  json j = SkyworkJson();
  j["moe_expert_interval"] = 1;
  j["moe_use_skywork_gating"] = false;
  EXPECT_TRUE(ParseModelConfig(j, kSource).ok());
  j["moe_expert_interval"] = 2;
  EXPECT_HAS_SUBSTR(ParseError(j).message(), "moe_expert_interval");
  j["moe_expert_interval"] = 1;
  j["moe_use_skywork_gating"] = true;
  EXPECT_HAS_SUBSTR(ParseError(j).message(), "moe_use_skywork_gating");
}

// The release's keys: a one-layer gate, the experts fed the norm's output.
TEST(ModelConfigTest, SkyworkReleaseFlags) {
  absl::StatusOr<ModelConfig> config = ParseModelConfig(SkyworkJson(), kSource);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->two_layer_gate);
  EXPECT_FALSE(config->mixtral_gating);
  EXPECT_TRUE(config->no_mul_topk);
  EXPECT_EQ(ExpertInputScale(*config), 1.0f);
}

// Absent keys take Skywork-MoE's modeling code's defaults: a two-layer gate,
// and the experts' input scaled by top_k.
TEST(ModelConfigTest, AbsentSkyworkFlagsTakeTheModelingCodeDefaults) {
  json j = SkyworkJson();
  for (const char* key : {"moe_2layer_gate", "moe_use_mixtral_gating",
                          "moe_feature_no_mul_topk"}) {
    j.erase(key);
  }
  absl::StatusOr<ModelConfig> config = ParseModelConfig(j, kSource);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->two_layer_gate);
  EXPECT_FALSE(config->mixtral_gating);
  EXPECT_FALSE(config->no_mul_topk);
  EXPECT_EQ(ExpertInputScale(*config), 2.0f);

  j["moe_feature_no_mul_topk"] = false;
  j["num_experts_per_tok"] = 3;
  config = ParseModelConfig(j, kSource);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(ExpertInputScale(*config), 3.0f);
  j["moe_use_mixtral_gating"] = true;
  config = ParseModelConfig(j, kSource);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->mixtral_gating);
  EXPECT_EQ(ExpertInputScale(*config), 1.0f);
  j["moe_feature_no_mul_topk"] = "yes";
  EXPECT_HAS_SUBSTR(ParseError(j).message(), "moe_feature_no_mul_topk");
}

TEST(ModelConfigTest, MixtralExpertsSeeTheNormOutputUnscaled) {
  absl::StatusOr<ModelConfig> config = ParseModelConfig(MixtralJson(), kSource);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(ExpertInputScale(*config), 1.0f);
}

// docs/examples' Skywork-MoE 146B config.json, as released, loads.
TEST(ModelConfigTest, TheSkyworkMoe146bExampleLoads) {
  const std::string path = std::string(MOE_SOURCE_DIR) +
                           "/docs/examples/skywork-moe-146b-config.json";
  absl::StatusOr<json> j = ReadJsonFile(path);
  ASSERT_TRUE(j.ok()) << j.status();
  absl::StatusOr<ModelConfig> config = ParseModelConfig(*j, path);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->architecture, Architecture::kSkyworkMoe);
  EXPECT_EQ(config->num_experts, 16);
  EXPECT_EQ(config->num_layers, 52);
  EXPECT_TRUE(config->use_logits_norm);
  EXPECT_FALSE(config->two_layer_gate);
  EXPECT_TRUE(config->no_mul_topk);
  EXPECT_EQ(config->weight_format, WeightFormat::kFp8);
}

TEST(ModelConfigTest, HugeIntegersAreRejectedNotWrapped) {
  json j = SkyworkJson();
  j["num_experts"] = {4294967298LL};
  EXPECT_HAS_SUBSTR(ParseError(j).message(), "num_experts");
  j = MixtralJson();
  j["eos_token_id"] = 4294967298LL;
  EXPECT_HAS_SUBSTR(ParseError(j).message(), "eos_token_id");
  j = MixtralJson();
  j["hidden_size"] = 4294967298LL;
  EXPECT_HAS_SUBSTR(ParseError(j).message(), "hidden_size");
}

TEST(ModelConfigTest, SkyworkMoeWithoutExpertCountIsNotCalledDense) {
  json j = SkyworkJson();
  j["model_type"] = "skywork_moe";
  j.erase("num_experts");
  const absl::Status status = ParseError(j);
  EXPECT_HAS_SUBSTR(status.message(), "num_experts");
  EXPECT_EQ(std::string(status.message()).find("dense"), std::string::npos);
}

TEST(ModelConfigTest, UnknownModelTypeIsRejectedByName) {
  json j = MixtralJson();
  j["model_type"] = "qwen2_moe";
  const absl::Status status = ParseError(j);
  ASSERT_FALSE(status.ok());
  EXPECT_HAS_SUBSTR(status.message(), "qwen2_moe");
  EXPECT_HAS_SUBSTR(status.message(), kSource);

  j.erase("model_type");
  EXPECT_FALSE(ParseError(j).ok());
  EXPECT_FALSE(ParseError(json::array({1, 2})).ok());
}

TEST(ModelConfigTest, MissingHiddenSizeIsNamed) {
  json j = MixtralJson();
  j.erase("hidden_size");
  const absl::Status status = ParseError(j);
  ASSERT_FALSE(status.ok());
  EXPECT_HAS_SUBSTR(status.message(), "hidden_size");
  EXPECT_HAS_SUBSTR(status.message(), kSource);
}

TEST(ModelConfigTest, OtherRequiredKeysAreNamed) {
  for (const char* key : {"intermediate_size", "num_hidden_layers",
                          "num_attention_heads", "vocab_size"}) {
    json j = MixtralJson();
    j.erase(key);
    const absl::Status status = ParseError(j);
    ASSERT_FALSE(status.ok()) << key;
    EXPECT_HAS_SUBSTR(status.message(), key);
  }
}

TEST(ModelConfigTest, BadValuesAreRejected) {
  json j = MixtralJson();
  j["hidden_size"] = -4096;
  EXPECT_FALSE(ParseError(j).ok());
  j = MixtralJson();
  j["hidden_size"] = "4096";
  EXPECT_FALSE(ParseError(j).ok());
  j = MixtralJson();
  j["eos_token_id"] = 32000;  // == vocab_size
  EXPECT_FALSE(ParseError(j).ok());
}

TEST(ModelConfigTest, HeadsMustBeAMultipleOfKvHeads) {
  json j = MixtralJson();
  j["num_key_value_heads"] = 5;
  const absl::Status status = ParseError(j);
  ASSERT_FALSE(status.ok());
  EXPECT_HAS_SUBSTR(status.message(), "num_key_value_heads");
}

TEST(ModelConfigTest, TopKLargerThanExpertsIsRejected) {
  json j = MixtralJson();
  j["num_experts_per_tok"] = 9;
  const absl::Status status = ParseError(j);
  ASSERT_FALSE(status.ok());
  EXPECT_HAS_SUBSTR(status.message(), "9");

  json s = SkyworkJson();
  s["num_experts"] = {1};  // top-2 implied
  EXPECT_FALSE(ParseError(s).ok());
}

TEST(ModelConfigTest, Fp8QuantizationConfig) {
  json j = MixtralJson();
  j["quantization_config"] = {{"quant_method", "fp8"},
                              {"activation_scheme", "dynamic"}};
  absl::StatusOr<ModelConfig> config = ParseModelConfig(j, kSource);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->weight_format, WeightFormat::kFp8);
}

TEST(ModelConfigTest, Fp8ActivationSchemes) {
  json j = MixtralJson();
  j["quantization_config"] = {{"quant_method", "fp8"},
                              {"activation_scheme", "static"}};
  auto config = ParseModelConfig(j, kSource);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->weight_format, WeightFormat::kFp8);
  j["quantization_config"]["activation_scheme"] = "per-moon";
  EXPECT_HAS_SUBSTR(ParseError(j).message(), "activation_scheme");
}

TEST(ModelConfigTest, UnknownQuantMethodIsRejected) {
  json j = MixtralJson();
  j["quantization_config"] = {{"quant_method", "gptq"}, {"bits", 4}};
  const absl::Status status = ParseError(j);
  ASSERT_FALSE(status.ok());
  EXPECT_HAS_SUBSTR(status.message(), "gptq");
}

void ExpectSameConfig(const ModelConfig& a, const ModelConfig& b) {
  EXPECT_EQ(a.architecture, b.architecture);
  EXPECT_EQ(a.hidden_size, b.hidden_size);
  EXPECT_EQ(a.intermediate_size, b.intermediate_size);
  EXPECT_EQ(a.num_layers, b.num_layers);
  EXPECT_EQ(a.num_heads, b.num_heads);
  EXPECT_EQ(a.num_kv_heads, b.num_kv_heads);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.num_experts, b.num_experts);
  EXPECT_EQ(a.top_k, b.top_k);
  EXPECT_EQ(a.rms_norm_eps, b.rms_norm_eps);
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.max_position_embeddings, b.max_position_embeddings);
  EXPECT_EQ(a.sliding_window, b.sliding_window);
  EXPECT_EQ(a.tie_word_embeddings, b.tie_word_embeddings);
  EXPECT_EQ(a.use_logits_norm, b.use_logits_norm);
  EXPECT_EQ(a.gate_norm_std, b.gate_norm_std);
  EXPECT_EQ(a.two_layer_gate, b.two_layer_gate);
  EXPECT_EQ(a.mixtral_gating, b.mixtral_gating);
  EXPECT_EQ(a.no_mul_topk, b.no_mul_topk);
  EXPECT_EQ(a.bos_token_id, b.bos_token_id);
  EXPECT_EQ(a.eos_token_ids, b.eos_token_ids);
  EXPECT_EQ(a.weight_format, b.weight_format);
}

void ExpectRoundTrip(const ModelConfig& config) {
  const json j = ModelConfigToJson(config);
  absl::StatusOr<ModelConfig> parsed = ParseModelConfig(j, kSource);
  ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << j.dump(2);
  ExpectSameConfig(config, *parsed);
}

ModelConfig SmallConfig() {
  ModelConfig c;
  c.hidden_size = 48;
  c.intermediate_size = 80;
  c.num_layers = 3;
  c.num_heads = 6;
  c.num_kv_heads = 2;
  c.head_dim = 10;  // not hidden / heads
  c.vocab_size = 500;
  c.num_experts = 5;
  c.top_k = 3;
  c.rms_norm_eps = 3e-6;
  c.rope_theta = 123456.5;
  c.max_position_embeddings = 777;
  c.sliding_window = 64;
  c.tie_word_embeddings = true;
  c.bos_token_id = 4;
  c.eos_token_ids = {9};
  return c;
}

TEST(ModelConfigRoundTripTest, Mixtral) {
  ModelConfig c = SmallConfig();
  ExpectRoundTrip(c);
  c.eos_token_ids = {9, 11};
  c.sliding_window = 0;
  c.bos_token_id = -1;
  c.tie_word_embeddings = false;
  c.weight_format = WeightFormat::kFp8;
  ExpectRoundTrip(c);
  c.eos_token_ids.clear();
  ExpectRoundTrip(c);
}

TEST(ModelConfigRoundTripTest, SkyworkMoe) {
  ModelConfig c = SmallConfig();
  c.architecture = Architecture::kSkyworkMoe;
  c.top_k = 2;
  c.use_logits_norm = true;
  c.gate_norm_std = 0.75;
  ExpectRoundTrip(c);
  c.use_logits_norm = false;
  c.weight_format = WeightFormat::kFp8;
  ExpectRoundTrip(c);
  // Every flag is written, so no reader falls back on its default.
  for (bool value : {false, true}) {
    c.two_layer_gate = c.mixtral_gating = c.no_mul_topk = value;
    const json j = ModelConfigToJson(c);
    EXPECT_EQ(j.at("moe_2layer_gate"), value);
    EXPECT_EQ(j.at("moe_use_mixtral_gating"), value);
    EXPECT_EQ(j.at("moe_feature_no_mul_topk"), value);
    ExpectRoundTrip(c);
  }
  UseSkyworkReleaseGating(&c);
  EXPECT_EQ(ExpertInputScale(c), 1.0f);
  EXPECT_FALSE(c.two_layer_gate);
  ExpectRoundTrip(c);
}

// ParseModelConfig accepts num_experts_per_tok for Skywork-MoE, so a config
// with another top_k must survive the round trip too.
TEST(ModelConfigRoundTripTest, SkyworkMoeWithTopKOtherThanTwo) {
  ModelConfig c = SmallConfig();
  c.architecture = Architecture::kSkyworkMoe;
  c.use_logits_norm = true;
  c.top_k = 1;
  ExpectRoundTrip(c);
  c.top_k = 3;
  ExpectRoundTrip(c);
}

TEST(ModelConfigRoundTripTest, ArchitectureSpelling) {
  ModelConfig c = SmallConfig();
  EXPECT_EQ(ModelConfigToJson(c)["model_type"], "mixtral");
  EXPECT_EQ(ArchitectureName(Architecture::kMixtral), "mixtral");
  c.architecture = Architecture::kSkyworkMoe;
  c.top_k = 2;
  EXPECT_EQ(ModelConfigToJson(c)["model_type"], "skywork_moe");
  EXPECT_EQ(ArchitectureName(Architecture::kSkyworkMoe), "skywork_moe");
}

}  // namespace
}  // namespace moe

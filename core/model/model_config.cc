#include "core/model/model_config.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"

namespace moe {
namespace {

// Larger than any real model dimension; bounds every integer read so that
// none wraps when narrowed to int.
constexpr int64_t kMaxConfigInt = int64_t{1} << 30;

class ConfigReader {
 public:
  ConfigReader(const nlohmann::json& json, const std::string& source)
      : json_(json), source_(source) {}

  absl::Status Error(const std::string& what) const {
    return absl::InvalidArgumentError(absl::StrCat(source_, ": ", what));
  }

  bool Has(const char* key) const {
    const auto it = json_.find(key);
    return it != json_.end() && !it->is_null();
  }

  // A required integer >= `min`.
  absl::Status Int(const char* key, int min, int* out) const {
    if (!Has(key)) return Error(absl::StrCat("missing \"", key, "\""));
    return OptionalInt(key, min, out);
  }

  // Leaves `out` as it is when the key is absent or null.
  absl::Status OptionalInt(const char* key, int min, int* out) const {
    if (!Has(key)) return absl::OkStatus();
    const nlohmann::json& value = json_.at(key);
    if (!value.is_number_integer() || value.get<int64_t>() < min ||
        value.get<int64_t>() > kMaxConfigInt) {
      return Error(absl::StrCat("\"", key, "\" must be an integer >= ", min,
                                ", got ", value.dump()));
    }
    *out = value.get<int>();
    return absl::OkStatus();
  }

  absl::Status OptionalDouble(const char* key, double* out) const {
    if (!Has(key)) return absl::OkStatus();
    const nlohmann::json& value = json_.at(key);
    if (!value.is_number() || value.get<double>() <= 0) {
      return Error(absl::StrCat("\"", key, "\" must be a positive number, got ",
                                value.dump()));
    }
    *out = value.get<double>();
    return absl::OkStatus();
  }

  absl::Status OptionalBool(const char* key, bool* out) const {
    if (!Has(key)) return absl::OkStatus();
    if (!json_.at(key).is_boolean()) {
      return Error(absl::StrCat("\"", key, "\" must be true or false"));
    }
    *out = json_.at(key).get<bool>();
    return absl::OkStatus();
  }

  const nlohmann::json& at(const char* key) const { return json_.at(key); }

 private:
  const nlohmann::json& json_;
  const std::string& source_;
};

absl::Status ReadExperts(const ConfigReader& reader, const std::string& type,
                         ModelConfig* config) {
  if (type == "mixtral") {
    config->architecture = Architecture::kMixtral;
    MOE_RETURN_IF_ERROR(
        reader.Int("num_local_experts", 1, &config->num_experts));
    return reader.Int("num_experts_per_tok", 1, &config->top_k);
  }
  config->architecture = Architecture::kSkyworkMoe;
  if (!reader.Has("num_experts")) {
    if (type == "skywork_moe") {
      return reader.Error("model_type \"skywork_moe\" needs \"num_experts\"");
    }
    return reader.Error(
        "model_type \"skywork\" without \"num_experts\" is the dense "
        "Skywork-13B, which is not a mixture-of-experts model; moe-serve "
        "serves Skywork-MoE (num_experts: [16])");
  }
  const nlohmann::json& experts = reader.at("num_experts");
  const nlohmann::json& count =
      experts.is_array() && experts.size() == 1 ? experts[0] : experts;
  if (!count.is_number_integer() || count.get<int64_t>() < 1 ||
      count.get<int64_t>() > kMaxConfigInt) {
    return reader.Error(
        absl::StrCat("\"num_experts\" must be a positive integer or a "
                     "one-element list, got ",
                     experts.dump()));
  }
  config->num_experts = count.get<int>();
  config->top_k = 2;  // Skywork-MoE routes every token to two experts
  MOE_RETURN_IF_ERROR(
      reader.OptionalInt("num_experts_per_tok", 1, &config->top_k));
  config->use_logits_norm = false;
  MOE_RETURN_IF_ERROR(
      reader.OptionalBool("moe_use_logits_norm", &config->use_logits_norm));
  MOE_RETURN_IF_ERROR(
      reader.OptionalDouble("moe_gate_norm_std", &config->gate_norm_std));
  int expert_interval = 1;
  MOE_RETURN_IF_ERROR(
      reader.OptionalInt("moe_expert_interval", 1, &expert_interval));
  if (expert_interval != 1) {
    return reader.Error(
        absl::StrCat("\"moe_expert_interval\": ", expert_interval,
                     " (dense layers between MoE layers) is not supported"));
  }
  // The modeling code's defaults for absent keys.
  config->two_layer_gate = true;
  MOE_RETURN_IF_ERROR(
      reader.OptionalBool("moe_2layer_gate", &config->two_layer_gate));
  config->mixtral_gating = false;
  MOE_RETURN_IF_ERROR(
      reader.OptionalBool("moe_use_mixtral_gating", &config->mixtral_gating));
  config->no_mul_topk = false;
  MOE_RETURN_IF_ERROR(
      reader.OptionalBool("moe_feature_no_mul_topk", &config->no_mul_topk));
  bool skywork_gating = false;
  MOE_RETURN_IF_ERROR(
      reader.OptionalBool("moe_use_skywork_gating", &skywork_gating));
  if (skywork_gating) {
    return reader.Error("\"moe_use_skywork_gating\": true is not supported");
  }
  return absl::OkStatus();
}

absl::Status ReadSpecialTokens(const ConfigReader& reader,
                               ModelConfig* config) {
  MOE_RETURN_IF_ERROR(
      reader.OptionalInt("bos_token_id", 0, &config->bos_token_id));
  if (!reader.Has("eos_token_id")) return absl::OkStatus();
  const nlohmann::json& eos = reader.at("eos_token_id");
  for (const nlohmann::json& id :
       eos.is_array() ? eos : nlohmann::json::array({eos})) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
        id.get<int64_t>() > kMaxConfigInt) {
      return reader.Error(absl::StrCat(
          "\"eos_token_id\" must be a token id or a list of them, got ",
          eos.dump()));
    }
    config->eos_token_ids.push_back(id.get<int>());
  }
  return absl::OkStatus();
}

absl::Status ReadQuantization(const ConfigReader& reader, ModelConfig* config) {
  if (!reader.Has("quantization_config")) return absl::OkStatus();
  const nlohmann::json& quant = reader.at("quantization_config");
  const std::string method = quant.is_object() &&
                                     quant.contains("quant_method") &&
                                     quant["quant_method"].is_string()
                                 ? quant["quant_method"].get<std::string>()
                                 : "";
  if (method != "fp8") {
    return reader.Error(
        absl::StrCat("quantization_config.quant_method \"", method,
                     "\" is not supported (supported: \"fp8\")"));
  }
  // Activations stay in float32 here, so "static" checkpoints (with
  // input_scale tensors for FP8 activations) compute the same way.
  if (quant.contains("activation_scheme") &&
      quant["activation_scheme"] != "dynamic" &&
      quant["activation_scheme"] != "static") {
    return reader.Error(
        "quantization_config.activation_scheme must be \"dynamic\" or "
        "\"static\"");
  }
  config->weight_format = WeightFormat::kFp8;
  return absl::OkStatus();
}

absl::Status Validate(const ConfigReader& reader, const ModelConfig& config) {
  if (config.num_heads % config.num_kv_heads != 0) {
    return reader.Error(
        absl::StrCat("num_attention_heads (", config.num_heads,
                     ") must be a multiple of num_key_value_heads (",
                     config.num_kv_heads, ")"));
  }
  if (config.head_dim % 2 != 0) {
    return reader.Error(absl::StrCat("head_dim ", config.head_dim,
                                     " must be even for rotary embeddings"));
  }
  if (config.top_k > config.num_experts) {
    return reader.Error(absl::StrCat("routes each token to ", config.top_k,
                                     " experts but has only ",
                                     config.num_experts));
  }
  for (int eos : config.eos_token_ids) {
    if (eos >= config.vocab_size) {
      return reader.Error(absl::StrCat("eos_token_id ", eos, " >= vocab_size ",
                                       config.vocab_size));
    }
  }
  if (config.bos_token_id >= config.vocab_size) {
    return reader.Error(absl::StrCat("bos_token_id ", config.bos_token_id,
                                     " >= vocab_size ", config.vocab_size));
  }
  return absl::OkStatus();
}

}  // namespace

std::string ArchitectureName(Architecture architecture) {
  return architecture == Architecture::kMixtral ? "mixtral" : "skywork_moe";
}

void UseSkyworkReleaseGating(ModelConfig* config) {
  config->use_logits_norm = true;
  config->gate_norm_std = 1.0;
  config->two_layer_gate = false;
  config->mixtral_gating = false;
  config->no_mul_topk = true;
}

void WriteSkyworkGatingKeys(const ModelConfig& config, nlohmann::json* json) {
  (*json)["moe_use_logits_norm"] = config.use_logits_norm;
  (*json)["moe_gate_norm_std"] = config.gate_norm_std;
  (*json)["moe_2layer_gate"] = config.two_layer_gate;
  (*json)["moe_use_mixtral_gating"] = config.mixtral_gating;
  (*json)["moe_feature_no_mul_topk"] = config.no_mul_topk;
}

float ExpertInputScale(const ModelConfig& config) {
  const bool scaled = config.architecture == Architecture::kSkyworkMoe &&
                      !config.mixtral_gating && !config.no_mul_topk;
  return scaled ? static_cast<float>(config.top_k) : 1.0f;
}

absl::StatusOr<ModelConfig> ParseModelConfig(const nlohmann::json& json,
                                             const std::string& source) {
  ConfigReader reader(json, source);
  if (!json.is_object()) return reader.Error("not a JSON object");
  if (!json.contains("model_type") || !json["model_type"].is_string()) {
    return reader.Error("missing \"model_type\"");
  }
  const std::string type = json["model_type"].get<std::string>();
  if (type != "mixtral" && type != "skywork_moe" && type != "skywork") {
    return reader.Error(absl::StrCat(
        "unsupported architecture \"", type,
        "\" (supported: mixtral, skywork_moe, skywork with num_experts)"));
  }
  ModelConfig config;
  MOE_RETURN_IF_ERROR(ReadExperts(reader, type, &config));
  MOE_RETURN_IF_ERROR(reader.Int("hidden_size", 1, &config.hidden_size));
  MOE_RETURN_IF_ERROR(
      reader.Int("intermediate_size", 1, &config.intermediate_size));
  MOE_RETURN_IF_ERROR(reader.Int("num_hidden_layers", 1, &config.num_layers));
  MOE_RETURN_IF_ERROR(reader.Int("num_attention_heads", 1, &config.num_heads));
  config.num_kv_heads = config.num_heads;
  MOE_RETURN_IF_ERROR(
      reader.OptionalInt("num_key_value_heads", 1, &config.num_kv_heads));
  MOE_RETURN_IF_ERROR(reader.Int("vocab_size", 1, &config.vocab_size));
  if (reader.Has("head_dim")) {
    MOE_RETURN_IF_ERROR(reader.Int("head_dim", 1, &config.head_dim));
  } else if (config.hidden_size % config.num_heads != 0) {
    return reader.Error(
        absl::StrCat("hidden_size ", config.hidden_size,
                     " is not a multiple of num_attention_heads ",
                     config.num_heads, " and no head_dim is given"));
  } else {
    config.head_dim = config.hidden_size / config.num_heads;
  }
  MOE_RETURN_IF_ERROR(
      reader.OptionalDouble("rms_norm_eps", &config.rms_norm_eps));
  MOE_RETURN_IF_ERROR(reader.OptionalDouble("rope_theta", &config.rope_theta));
  MOE_RETURN_IF_ERROR(reader.OptionalInt("max_position_embeddings", 1,
                                         &config.max_position_embeddings));
  MOE_RETURN_IF_ERROR(
      reader.OptionalInt("sliding_window", 0, &config.sliding_window));
  MOE_RETURN_IF_ERROR(
      reader.OptionalBool("tie_word_embeddings", &config.tie_word_embeddings));
  if (reader.Has("rope_scaling")) {
    return reader.Error(absl::StrCat(
        "rope_scaling ", json["rope_scaling"].dump(), " is not supported"));
  }
  if (reader.Has("hidden_act") && json["hidden_act"] != "silu") {
    return reader.Error(
        absl::StrCat("hidden_act ", json["hidden_act"].dump(),
                     " is not supported (supported: \"silu\")"));
  }
  MOE_RETURN_IF_ERROR(ReadSpecialTokens(reader, &config));
  MOE_RETURN_IF_ERROR(ReadQuantization(reader, &config));
  MOE_RETURN_IF_ERROR(Validate(reader, config));
  return config;
}

absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& directory) {
  const std::string path = directory + "/config.json";
  absl::StatusOr<nlohmann::json> json = ReadJsonFile(path);
  if (!json.ok()) return json.status();
  return ParseModelConfig(*json, path);
}

nlohmann::json ModelConfigToJson(const ModelConfig& config) {
  nlohmann::json json;
  if (config.architecture == Architecture::kMixtral) {
    json["architectures"] = {"MixtralForCausalLM"};
    json["model_type"] = "mixtral";
    json["num_local_experts"] = config.num_experts;
    json["num_experts_per_tok"] = config.top_k;
  } else {
    json["architectures"] = {"SkyworkForCausalLM"};
    json["model_type"] = "skywork_moe";
    json["num_experts"] = {config.num_experts};
    WriteSkyworkGatingKeys(config, &json);
    json["num_experts_per_tok"] = config.top_k;
  }
  json["hidden_size"] = config.hidden_size;
  json["intermediate_size"] = config.intermediate_size;
  json["num_hidden_layers"] = config.num_layers;
  json["num_attention_heads"] = config.num_heads;
  json["num_key_value_heads"] = config.num_kv_heads;
  json["head_dim"] = config.head_dim;
  json["vocab_size"] = config.vocab_size;
  json["rms_norm_eps"] = config.rms_norm_eps;
  json["rope_theta"] = config.rope_theta;
  json["max_position_embeddings"] = config.max_position_embeddings;
  json["sliding_window"] = config.sliding_window > 0
                               ? nlohmann::json(config.sliding_window)
                               : nlohmann::json();
  json["tie_word_embeddings"] = config.tie_word_embeddings;
  json["hidden_act"] = "silu";
  if (config.bos_token_id >= 0) json["bos_token_id"] = config.bos_token_id;
  if (config.eos_token_ids.size() == 1) {
    json["eos_token_id"] = config.eos_token_ids[0];
  } else if (!config.eos_token_ids.empty()) {
    json["eos_token_id"] = config.eos_token_ids;
  }
  json["torch_dtype"] = "bfloat16";
  if (config.weight_format == WeightFormat::kFp8) {
    json["quantization_config"] = {{"quant_method", "fp8"},
                                   {"activation_scheme", "dynamic"}};
  }
  return json;
}

}  // namespace moe

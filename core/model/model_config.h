#ifndef MOE_CORE_MODEL_MODEL_CONFIG_H_
#define MOE_CORE_MODEL_MODEL_CONFIG_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace moe {

enum class Architecture { kMixtral, kSkyworkMoe };

// How the checkpoint stores its linear weights.
enum class WeightFormat { kFloat, kFp8 };

// The model hyper-parameters of a Hugging Face `config.json`, normalized over
// the spellings of Mixtral and Skywork-MoE.
struct ModelConfig {
  Architecture architecture = Architecture::kMixtral;
  int hidden_size = 0;
  int intermediate_size = 0;  // of one expert
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int vocab_size = 0;
  int num_experts = 0;
  int top_k = 2;
  double rms_norm_eps = 1e-5;
  double rope_theta = 1e6;
  int max_position_embeddings = 4096;
  int sliding_window = 0;  // 0: attend to the whole context
  bool tie_word_embeddings = false;
  // Skywork-MoE's MoE flags, as its modeling code reads them (defaults: its
  // defaults when the key is absent). moe_use_logits_norm: divide the gate
  // logits by std(logits, unbiased) / moe_gate_norm_std.
  bool use_logits_norm = false;
  double gate_norm_std = 1.0;
  // moe_2layer_gate: the gate is Linear(H, 8E), tanh, Linear(8E, E) rather
  // than one Linear(H, E). Absent: true.
  bool two_layer_gate = false;
  // moe_use_mixtral_gating: top-k of the logits, then a softmax over those
  // (the same experts and weights as the softmax over all, renormalized).
  bool mixtral_gating = false;
  // moe_feature_no_mul_topk: false (and absent) feeds the experts the
  // post-attention norm's output times top_k, unless mixtral_gating.
  bool no_mul_topk = false;
  int bos_token_id = -1;  // -1: none
  std::vector<int> eos_token_ids;
  WeightFormat weight_format = WeightFormat::kFloat;
};

std::string ArchitectureName(Architecture architecture);

// Skywork-MoE's gating as its release configures it: normalized logits
// (moe_use_logits_norm, moe_gate_norm_std 1), a one-layer gate, and the
// experts fed the norm's output unscaled (moe_feature_no_mul_topk).
void UseSkyworkReleaseGating(ModelConfig* config);

// The Skywork-MoE keys of `config` spelled out in `json` (a config.json), so
// that no reader falls back on a default.
void WriteSkyworkGatingKeys(const ModelConfig& config, nlohmann::json* json);

// What the experts' input is multiplied by, where the router forms it from
// the post-attention norm's output (the gate sees the output unscaled):
// top_k for Skywork-MoE unless moe_use_mixtral_gating or
// moe_feature_no_mul_topk, else 1.
float ExpertInputScale(const ModelConfig& config);

// `source` names the file in error messages.
absl::StatusOr<ModelConfig> ParseModelConfig(const nlohmann::json& json,
                                             const std::string& source);

// Reads `<directory>/config.json`.
absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& directory);

// The `config.json` a Hugging Face checkpoint of this config carries, in the
// architecture's own spelling.
nlohmann::json ModelConfigToJson(const ModelConfig& config);

}  // namespace moe

#endif  // MOE_CORE_MODEL_MODEL_CONFIG_H_

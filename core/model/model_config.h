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
  // Skywork-MoE gating: divide the gate logits by std(logits) / gate_norm_std.
  bool use_logits_norm = false;
  double gate_norm_std = 1.0;
  int bos_token_id = -1;  // -1: none
  std::vector<int> eos_token_ids;
  WeightFormat weight_format = WeightFormat::kFloat;
};

std::string ArchitectureName(Architecture architecture);

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

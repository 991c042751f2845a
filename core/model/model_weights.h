#ifndef MOE_CORE_MODEL_MODEL_WEIGHTS_H_
#define MOE_CORE_MODEL_MODEL_WEIGHTS_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/checkpoint.h"
#include "core/model/linear_weight.h"
#include "core/model/model_config.h"

namespace moe {

struct ExpertWeights {
  bool loaded = false;
  LinearWeight w1;  // gate projection [intermediate, hidden]
  LinearWeight w3;  // up projection [intermediate, hidden]
  LinearWeight w2;  // down projection [hidden, intermediate]
};

struct LayerWeights {
  std::vector<float> input_norm;  // [hidden]
  std::vector<float> post_attention_norm;
  LinearWeight q_proj;  // [heads * head_dim, hidden]
  LinearWeight k_proj;  // [kv_heads * head_dim, hidden]
  LinearWeight v_proj;
  LinearWeight o_proj;  // [hidden, heads * head_dim]
  // The router's gate: [experts, hidden]; with moe_2layer_gate its second
  // product [experts, 8 * experts], after gate_hidden [8 * experts, hidden]
  // and a tanh.
  LinearWeight gate;
  LinearWeight gate_hidden;            // with moe_2layer_gate only
  std::vector<ExpertWeights> experts;  // indexed by expert id
};

// Which parts of a checkpoint a process needs. A router skips the experts; a
// worker takes only its own.
struct WeightSelection {
  bool dense_parts = true;  // embeddings, attention, norms, gates, LM head
  // Experts to load; null means all.
  std::function<bool(int layer, int expert)> expert_filter;
};

// The validated, memory-mapped weights of an MoE checkpoint. Loading checks
// every selected tensor's presence, dtype and shape (and FP8 scales) before
// any compute, with errors naming the tensor and its file.
class ModelWeights {
 public:
  static absl::StatusOr<std::unique_ptr<ModelWeights>> Load(
      const std::string& directory,
      const WeightSelection& selection = WeightSelection());

  const ModelConfig& config() const { return config_; }
  const Checkpoint& checkpoint() const { return *checkpoint_; }
  const LinearWeight& embed_tokens() const { return embed_tokens_; }
  const std::vector<float>& final_norm() const { return final_norm_; }
  const LinearWeight& lm_head() const { return lm_head_; }
  const std::vector<LayerWeights>& layers() const { return layers_; }

 private:
  ModelConfig config_;
  std::unique_ptr<Checkpoint> checkpoint_;
  LinearWeight embed_tokens_;
  std::vector<float> final_norm_;
  LinearWeight lm_head_;
  std::vector<LayerWeights> layers_;
};

}  // namespace moe

#endif  // MOE_CORE_MODEL_MODEL_WEIGHTS_H_

#ifndef MOE_TOOLS_MOE_UPCYCLE_DENSE_MODEL_H_
#define MOE_TOOLS_MOE_UPCYCLE_DENSE_MODEL_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/model_config.h"
#include "nlohmann/json.hpp"

namespace moe {

// A dense llama-architecture model seen in the Hugging Face layout, whatever
// file it came from. Tensor names are the HF ones: model.embed_tokens.weight,
// model.norm.weight, lm_head.weight (absent when tied),
// model.layers.N.{input_layernorm,post_attention_layernorm}.weight,
// model.layers.N.self_attn.{q,k,v,o}_proj.weight and
// model.layers.N.mlp.{gate,up,down}_proj.weight.
class DenseModel {
 public:
  virtual ~DenseModel() = default;

  // The model as a one-expert, top-1 Mixtral: its FFN is the expert.
  const ModelConfig& config() const { return config_; }
  // Every tensor's name and row-major shape, outermost first.
  const std::map<std::string, std::vector<int64_t>>& shapes() const {
    return shapes_;
  }
  // The tensor's values as float32, row-major, in the HF layout.
  virtual absl::StatusOr<std::vector<float>> Read(
      const std::string& name) const = 0;
  // Writes the model's tokenizer files into `directory`.
  virtual absl::Status WriteTokenizer(const std::string& directory) const = 0;

 protected:
  ModelConfig config_;
  std::map<std::string, std::vector<int64_t>> shapes_;
};

// Opens a GGUF file (llama architecture) or a Hugging Face checkpoint
// directory whose config.json has model_type "llama"; anything else is an
// error naming what was found.
absl::StatusOr<std::unique_ptr<DenseModel>> OpenDenseModel(
    const std::string& path);

// Parses a dense llama config (HF spelling) into the one-expert Mixtral
// config, with every check ParseModelConfig makes.
absl::StatusOr<ModelConfig> ParseDenseLlamaConfig(nlohmann::json json,
                                                  const std::string& source);

// The HF tensor names and shapes a dense llama model of `config` has.
std::map<std::string, std::vector<int64_t>> DenseLlamaShapes(
    const ModelConfig& config);

}  // namespace moe

#endif  // MOE_TOOLS_MOE_UPCYCLE_DENSE_MODEL_H_

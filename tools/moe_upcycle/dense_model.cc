#include "tools/moe_upcycle/dense_model.h"

#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/model/checkpoint.h"
#include "core/model/decode_values.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "tools/moe_upcycle/gguf_llama.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// A Hugging Face llama checkpoint directory.
class HfDenseModel : public DenseModel {
 public:
  static absl::StatusOr<std::unique_ptr<DenseModel>> Open(
      const std::string& directory) {
    auto model = std::unique_ptr<HfDenseModel>(new HfDenseModel);
    const std::string config_path = directory + "/config.json";
    MOE_ASSIGN_OR_RETURN(nlohmann::json json, ReadJsonFile(config_path));
    MOE_ASSIGN_OR_RETURN(model->config_,
                         ParseDenseLlamaConfig(std::move(json), config_path));
    MOE_ASSIGN_OR_RETURN(model->checkpoint_, Checkpoint::Open(directory));
    model->shapes_ = DenseLlamaShapes(model->config_);
    for (const auto& [name, shape] : model->shapes_) {
      const TensorView* view = model->checkpoint_->Find(name);
      if (view == nullptr) {
        return absl::NotFoundError(
            absl::StrCat("tensor ", name, " is missing from ",
                         model->checkpoint_->Describe()));
      }
      if (view->shape != shape) {
        return absl::InvalidArgumentError(absl::StrCat(
            "tensor ", name, " in ", view->file, " has shape ",
            ShapeString(view->shape), ", expected ", ShapeString(shape)));
      }
      if (view->dtype == DType::kF8E4M3) {
        return absl::InvalidArgumentError(
            absl::StrCat("tensor ", name, " in ", view->file,
                         " is F8_E4M3; a dense input must be F32, F16 or "
                         "BF16"));
      }
    }
    return model;
  }

  absl::StatusOr<std::vector<float>> Read(
      const std::string& name) const override {
    const TensorView* view = checkpoint_->Find(name);
    if (view == nullptr || shapes_.count(name) == 0) {
      return absl::NotFoundError(
          absl::StrCat("no tensor ", name, " in ", checkpoint_->Describe()));
    }
    std::vector<float> values(static_cast<size_t>(view->num_elements()));
    DecodeValues(view->dtype, view->data, view->num_elements(), values.data());
    return values;
  }

  absl::Status WriteTokenizer(const std::string& directory) const override {
    bool found = false;
    for (const char* file :
         {"tokenizer.model", "tokenizer.json", "tokenizer_config.json",
          "special_tokens_map.json", "generation_config.json"}) {
      const fs::path source = fs::path(checkpoint_->directory()) / file;
      if (!fs::exists(source)) continue;
      found = found || absl::StartsWith(file, "tokenizer.");
      std::error_code error;
      fs::copy_file(source, fs::path(directory) / file,
                    fs::copy_options::overwrite_existing, error);
      if (error) {
        return absl::PermissionDeniedError(absl::StrCat(
            "cannot copy ", source.string(), ": ", error.message()));
      }
    }
    if (!found) {
      return absl::NotFoundError(
          absl::StrCat(checkpoint_->directory(),
                       " has no tokenizer.json or tokenizer.model"));
    }
    return absl::OkStatus();
  }

 private:
  std::unique_ptr<Checkpoint> checkpoint_;
};

}  // namespace

absl::StatusOr<ModelConfig> ParseDenseLlamaConfig(nlohmann::json json,
                                                  const std::string& source) {
  const auto type = json.find("model_type");
  if (!json.is_object() || type == json.end() || *type != "llama") {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": model_type ",
        json.is_object() && type != json.end() ? type->dump() : "(none)",
        " is not a dense llama model (model_type \"llama\")"));
  }
  // The dense FFN is a one-expert mixture with top-1 routing (weight 1).
  json["model_type"] = "mixtral";
  json["num_local_experts"] = 1;
  json["num_experts_per_tok"] = 1;
  for (const char* unsupported : {"attention_bias", "mlp_bias"}) {
    if (json.contains(unsupported) && json[unsupported] == true) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ": \"", unsupported, "\": true is not supported"));
    }
  }
  return ParseModelConfig(json, source);
}

std::map<std::string, std::vector<int64_t>> DenseLlamaShapes(
    const ModelConfig& config) {
  const int64_t h = config.hidden_size;
  const int64_t inter = config.intermediate_size;
  const int64_t q_dim = int64_t{config.num_heads} * config.head_dim;
  const int64_t kv_dim = int64_t{config.num_kv_heads} * config.head_dim;
  std::map<std::string, std::vector<int64_t>> shapes = {
      {"model.embed_tokens.weight", {config.vocab_size, h}},
      {"model.norm.weight", {h}}};
  if (!config.tie_word_embeddings) {
    shapes["lm_head.weight"] = {config.vocab_size, h};
  }
  for (int layer = 0; layer < config.num_layers; ++layer) {
    const std::string p = absl::StrCat("model.layers.", layer, ".");
    shapes[p + "input_layernorm.weight"] = {h};
    shapes[p + "post_attention_layernorm.weight"] = {h};
    shapes[p + "self_attn.q_proj.weight"] = {q_dim, h};
    shapes[p + "self_attn.k_proj.weight"] = {kv_dim, h};
    shapes[p + "self_attn.v_proj.weight"] = {kv_dim, h};
    shapes[p + "self_attn.o_proj.weight"] = {h, q_dim};
    shapes[p + "mlp.gate_proj.weight"] = {inter, h};
    shapes[p + "mlp.up_proj.weight"] = {inter, h};
    shapes[p + "mlp.down_proj.weight"] = {h, inter};
  }
  return shapes;
}

absl::StatusOr<std::unique_ptr<DenseModel>> OpenDenseModel(
    const std::string& path) {
  std::error_code error;
  if (fs::is_directory(path, error)) return HfDenseModel::Open(path);
  if (!fs::exists(path, error)) {
    return absl::NotFoundError(absl::StrCat(path, " does not exist"));
  }
  return OpenGgufLlama(path);
}

}  // namespace moe

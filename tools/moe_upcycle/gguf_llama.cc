#include "tools/moe_upcycle/gguf_llama.h"

#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/tokenizer/gguf_tokenizer.h"
#include "core/util/status_macros.h"

namespace moe {
namespace {

// HF suffix of a layer tensor and its GGUF suffix.
constexpr std::pair<const char*, const char*> kLayerNames[] = {
    {"input_layernorm.weight", "attn_norm.weight"},
    {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.k_proj.weight", "attn_k.weight"},
    {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.o_proj.weight", "attn_output.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},
    {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
};

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// GGUF converters reorder each head's Q/K rows from HF's two halves
// (rotate-half RoPE) to interleaved pairs: GGUF row 2j + i of a head is HF
// row i·(head_dim/2) + j. This undoes it.
std::vector<float> UnpermuteRotaryRows(const std::vector<float>& gguf,
                                       int64_t rows, int64_t cols,
                                       int64_t head_dim) {
  std::vector<float> hf(gguf.size());
  const int64_t half = head_dim / 2;
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t head = row / head_dim, in_head = row % head_dim;
    const int64_t i = in_head / half, j = in_head % half;
    const int64_t source = head * head_dim + 2 * j + i;
    std::memcpy(&hf[row * cols], &gguf[source * cols], cols * sizeof(float));
  }
  return hf;
}

// Reads `llama.*` metadata into an HF config.json.
class MetadataReader {
 public:
  explicit MetadataReader(const GgufFile& gguf) : gguf_(gguf) {}

  absl::Status Error(const std::string& what) const {
    return absl::InvalidArgumentError(absl::StrCat(gguf_.path(), ": ", what));
  }

  const nlohmann::json* Find(const std::string& key) const {
    const auto it = gguf_.metadata().find(key);
    return it == gguf_.metadata().end() ? nullptr : &*it;
  }

  // Copies an unsigned integer key into `json[hf_key]`.
  absl::Status Int(const std::string& key, const char* hf_key, bool required,
                   nlohmann::json& json) const {
    const nlohmann::json* value = Find(key);
    if (value == nullptr) {
      return required ? Error(absl::StrCat("missing metadata ", key))
                      : absl::OkStatus();
    }
    if (!value->is_number_integer() || value->get<int64_t>() < 0) {
      return Error(absl::StrCat("metadata ", key,
                                " must be a non-negative "
                                "integer, got ",
                                GgufValueText(*value)));
    }
    json[hf_key] = value->get<int64_t>();
    return absl::OkStatus();
  }

  absl::Status Float(const std::string& key, const char* hf_key,
                     nlohmann::json& json) const {
    const nlohmann::json* value = Find(key);
    if (value == nullptr) return absl::OkStatus();
    if (!value->is_number()) {
      return Error(absl::StrCat("metadata ", key, " must be a number"));
    }
    json[hf_key] = value->get<double>();
    return absl::OkStatus();
  }

 private:
  const GgufFile& gguf_;
};

absl::StatusOr<nlohmann::json> HfConfigOf(const GgufFile& gguf) {
  MetadataReader reader(gguf);
  const nlohmann::json* architecture = reader.Find("general.architecture");
  if (architecture == nullptr || *architecture != "llama") {
    return reader.Error(absl::StrCat(
        "general.architecture ",
        architecture == nullptr ? "(missing)" : GgufValueText(*architecture),
        " is not supported (supported: \"llama\")"));
  }
  const nlohmann::json* experts = reader.Find("llama.expert_count");
  if (experts != nullptr && *experts != 0) {
    return reader.Error(absl::StrCat("llama.expert_count ",
                                     GgufValueText(*experts),
                                     ": a mixture-of-experts GGUF cannot be "
                                     "imported; import a dense model"));
  }
  const nlohmann::json* scaling = reader.Find("llama.rope.scaling.type");
  if ((scaling != nullptr && *scaling != "none") ||
      gguf.Find("rope_freqs.weight") != nullptr) {
    return reader.Error("RoPE scaling is not supported");
  }
  nlohmann::json json = {{"model_type", "llama"}};
  MOE_RETURN_IF_ERROR(
      reader.Int("llama.embedding_length", "hidden_size", true, json));
  MOE_RETURN_IF_ERROR(
      reader.Int("llama.feed_forward_length", "intermediate_size", true, json));
  MOE_RETURN_IF_ERROR(
      reader.Int("llama.block_count", "num_hidden_layers", true, json));
  MOE_RETURN_IF_ERROR(reader.Int("llama.attention.head_count",
                                 "num_attention_heads", true, json));
  MOE_RETURN_IF_ERROR(reader.Int("llama.attention.head_count_kv",
                                 "num_key_value_heads", false, json));
  MOE_RETURN_IF_ERROR(
      reader.Int("llama.attention.key_length", "head_dim", false, json));
  MOE_RETURN_IF_ERROR(reader.Int("llama.context_length",
                                 "max_position_embeddings", false, json));
  MOE_RETURN_IF_ERROR(reader.Float("llama.attention.layer_norm_rms_epsilon",
                                   "rms_norm_eps", json));
  MOE_RETURN_IF_ERROR(reader.Float("llama.rope.freq_base", "rope_theta", json));
  json.emplace("rope_theta", 10000.0);  // llama.cpp's default
  MOE_RETURN_IF_ERROR(
      reader.Int("tokenizer.ggml.bos_token_id", "bos_token_id", false, json));
  MOE_RETURN_IF_ERROR(
      reader.Int("tokenizer.ggml.eos_token_id", "eos_token_id", false, json));
  const GgufTensor* embeddings = gguf.Find("token_embd.weight");
  if (embeddings == nullptr || embeddings->dims.size() != 2) {
    return reader.Error("missing 2-D tensor token_embd.weight");
  }
  json["vocab_size"] = embeddings->dims[1];
  json["tie_word_embeddings"] = gguf.Find("output.weight") == nullptr;
  return json;
}

class GgufLlamaModel : public DenseModel {
 public:
  static absl::StatusOr<std::unique_ptr<DenseModel>> Open(
      const std::string& path) {
    auto model = std::unique_ptr<GgufLlamaModel>(new GgufLlamaModel);
    MOE_ASSIGN_OR_RETURN(model->gguf_, GgufFile::Open(path));
    MOE_ASSIGN_OR_RETURN(nlohmann::json json, HfConfigOf(*model->gguf_));
    MOE_ASSIGN_OR_RETURN(model->config_,
                         ParseDenseLlamaConfig(std::move(json), path));
    const nlohmann::json* rope_dims =
        MetadataReader(*model->gguf_).Find("llama.rope.dimension_count");
    if (rope_dims != nullptr && *rope_dims != model->config_.head_dim) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": llama.rope.dimension_count ", GgufValueText(*rope_dims),
          " differs from the head dimension ", model->config_.head_dim,
          " (partial rotary embeddings are not supported)"));
    }
    model->shapes_ = DenseLlamaShapes(model->config_);
    MOE_RETURN_IF_ERROR(model->CheckTensors());
    return model;
  }

  absl::StatusOr<std::vector<float>> Read(
      const std::string& name) const override {
    const GgufTensor* tensor = Tensor(name);
    if (tensor == nullptr) {
      return absl::NotFoundError(
          absl::StrCat("no tensor ", name, " in ", gguf_->path()));
    }
    MOE_ASSIGN_OR_RETURN(std::vector<float> values, gguf_->ReadFloats(*tensor));
    const int64_t cols = config_.hidden_size;
    if (absl::EndsWith(name, "self_attn.q_proj.weight") ||
        absl::EndsWith(name, "self_attn.k_proj.weight")) {
      return UnpermuteRotaryRows(values, values.size() / cols, cols,
                                 config_.head_dim);
    }
    return values;
  }

  absl::Status WriteTokenizer(const std::string& directory) const override {
    return WriteGgufTokenizer(gguf_->metadata(), gguf_->path(), directory)
        .status();
  }

 private:
  const GgufTensor* Tensor(const std::string& hf_name) const {
    if (shapes_.count(hf_name) == 0) return nullptr;
    return gguf_->Find(GgufTensorName(hf_name));
  }

  absl::Status CheckTensors() const {
    for (const auto& [name, shape] : shapes_) {
      const GgufTensor* tensor = Tensor(name);
      if (tensor == nullptr) {
        return absl::NotFoundError(absl::StrCat(
            gguf_->path(), ": missing tensor ", GgufTensorName(name)));
      }
      if (tensor->shape() != shape) {
        return absl::InvalidArgumentError(absl::StrCat(
            gguf_->path(), ": tensor ", tensor->name, " has shape ",
            ShapeString(tensor->shape()), ", expected ", ShapeString(shape)));
      }
    }
    return absl::OkStatus();
  }

  std::unique_ptr<GgufFile> gguf_;
};

}  // namespace

std::string GgufTensorName(const std::string& hf_name) {
  if (hf_name == "model.embed_tokens.weight") return "token_embd.weight";
  if (hf_name == "model.norm.weight") return "output_norm.weight";
  if (hf_name == "lm_head.weight") return "output.weight";
  std::vector<std::string> parts =
      absl::StrSplit(hf_name, absl::MaxSplits('.', 3));
  int layer = 0;
  if (parts.size() != 4 || parts[0] != "model" || parts[1] != "layers" ||
      !absl::SimpleAtoi(parts[2], &layer)) {
    return "";
  }
  for (const auto& [hf_suffix, gguf_suffix] : kLayerNames) {
    if (parts[3] == hf_suffix)
      return absl::StrCat("blk.", layer, ".", gguf_suffix);
  }
  return "";
}

absl::StatusOr<std::unique_ptr<DenseModel>> OpenGgufLlama(
    const std::string& path) {
  return GgufLlamaModel::Open(path);
}

}  // namespace moe

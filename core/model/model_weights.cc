#include "core/model/model_weights.h"

#include <cmath>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/model/decode_values.h"
#include "core/util/status_macros.h"

namespace moe {
namespace {

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// The SIMD kernels decode FP8 with a bit trick that has no NaN (0x7F and 0xFF
// would read as +-480), so NaN codes, which no valid checkpoint holds, are
// refused at load. Eight bytes at a time: the low 7 bits plus one carry into
// bit 7 only for 0x7F.
absl::Status CheckNoFp8Nan(const TensorView& view) {
  constexpr uint64_t kLow7 = 0x7F7F7F7F7F7F7F7Full;
  constexpr uint64_t kOnes = 0x0101010101010101ull;
  constexpr uint64_t kHigh = 0x8080808080808080ull;
  size_t i = 0;
  for (; i + 8 <= view.num_bytes; i += 8) {
    uint64_t word;
    std::memcpy(&word, view.data + i, 8);
    if ((((word & kLow7) + kOnes) & kHigh) != 0) break;
  }
  for (; i < view.num_bytes; ++i) {
    if ((view.data[i] & 0x7F) == 0x7F) {
      return absl::DataLossError(absl::StrCat(
          "tensor ", view.name, " in ", view.file,
          " holds an FP8 NaN code at element ", i, ": the file is corrupt"));
    }
  }
  return absl::OkStatus();
}

// Looks tensors up in a checkpoint and checks them against what the
// architecture needs.
class TensorChecker {
 public:
  explicit TensorChecker(const Checkpoint& checkpoint)
      : checkpoint_(checkpoint) {}

  bool Has(const std::string& name) const {
    return checkpoint_.Find(name) != nullptr;
  }
  std::string Describe() const { return checkpoint_.Describe(); }

  absl::StatusOr<const TensorView*> Require(
      const std::string& name, const std::vector<int64_t>& shape) const {
    const TensorView* view = checkpoint_.Find(name);
    if (view == nullptr) {
      return absl::NotFoundError(absl::StrCat("missing tensor ", name, " in ",
                                              checkpoint_.Describe()));
    }
    if (view->shape != shape) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor ", name, " in ", view->file, " has shape ",
          ShapeString(view->shape), ", expected ", ShapeString(shape)));
    }
    return view;
  }

  // A norm weight, decoded to float32.
  absl::StatusOr<std::vector<float>> Vector(const std::string& name,
                                            int64_t size) const {
    MOE_ASSIGN_OR_RETURN(const TensorView* view, Require(name, {size}));
    if (view->dtype == DType::kF8E4M3) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor ", name, " in ", view->file,
                       " is F8_E4M3; norm weights must be BF16, F16 or F32"));
    }
    std::vector<float> values(static_cast<size_t>(size));
    DecodeValues(view->dtype, view->data, size, values.data());
    return values;
  }

  // A linear weight [rows, cols]; FP8 needs its `<name>_scale` beside it.
  absl::StatusOr<LinearWeight> Matrix(const std::string& name, int64_t rows,
                                      int64_t cols) const {
    MOE_ASSIGN_OR_RETURN(const TensorView* view, Require(name, {rows, cols}));
    LinearWeight weight;
    weight.dtype = view->dtype;
    weight.rows = rows;
    weight.cols = cols;
    weight.data = view->data;
    if (view->dtype == DType::kF8E4M3) {
      MOE_ASSIGN_OR_RETURN(weight.scales, Scales(name + "_scale", rows));
      MOE_RETURN_IF_ERROR(CheckNoFp8Nan(*view));
    }
    return weight;
  }

 private:
  // Per-tensor (shape [] or [1]) or per-output-channel ([rows] or [rows, 1]).
  absl::StatusOr<std::vector<float>> Scales(const std::string& name,
                                            int64_t rows) const {
    const TensorView* view = checkpoint_.Find(name);
    if (view == nullptr) {
      return absl::NotFoundError(absl::StrCat("missing tensor ", name,
                                              " (the FP8 weight's scale) in ",
                                              checkpoint_.Describe()));
    }
    const int64_t count = view->num_elements();
    const bool per_tensor = count == 1 && view->shape.size() <= 1;
    const bool per_channel =
        count == rows && (view->shape == std::vector<int64_t>{rows} ||
                          view->shape == std::vector<int64_t>{rows, 1});
    if (!per_tensor && !per_channel) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor ", name, " in ", view->file, " has shape ",
          ShapeString(view->shape), ", expected [] or [1] (per tensor) or [",
          rows, "] (per output channel)"));
    }
    if (view->dtype == DType::kF8E4M3) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor ", name, " in ", view->file, " must be F32, BF16 or F16"));
    }
    std::vector<float> scales(static_cast<size_t>(count));
    DecodeValues(view->dtype, view->data, count, scales.data());
    for (float scale : scales) {
      if (!std::isfinite(scale) || scale <= 0.0f) {
        return absl::InvalidArgumentError(absl::StrCat(
            "tensor ", name, " in ", view->file,
            " holds a scale that is not a positive finite number: ", scale));
      }
    }
    return scales;
  }

  const Checkpoint& checkpoint_;
};

// The gate: one product, or with moe_2layer_gate two, named as Skywork-MoE's
// modeling code names its modules (wg: Linear, Tanh, Linear).
absl::Status LoadGate(const TensorChecker& check, const ModelConfig& c,
                      const std::string& prefix, LayerWeights* out) {
  if (!c.two_layer_gate) {
    MOE_ASSIGN_OR_RETURN(out->gate, check.Matrix(prefix + "weight",
                                                 c.num_experts, c.hidden_size));
    return absl::OkStatus();
  }
  const std::string first = prefix + "wg.0.weight";
  const std::string second = prefix + "wg.2.weight";
  std::vector<std::string> missing;
  for (const std::string& name : {first, second}) {
    if (!check.Has(name)) missing.push_back(name);
  }
  if (!missing.empty()) {
    return absl::NotFoundError(absl::StrCat(
        "\"moe_2layer_gate\": true (also the default when config.json leaves "
        "it out) needs the two gate products, but ",
        check.Describe(), " lacks ", absl::StrJoin(missing, " and "),
        check.Has(prefix + "weight")
            ? absl::StrCat("; it has the one-layer gate ", prefix,
                           "weight: set \"moe_2layer_gate\": false")
            : ""));
  }
  const int64_t middle = 8 * int64_t{c.num_experts};
  MOE_ASSIGN_OR_RETURN(out->gate_hidden,
                       check.Matrix(first, middle, c.hidden_size));
  MOE_ASSIGN_OR_RETURN(out->gate, check.Matrix(second, c.num_experts, middle));
  return absl::OkStatus();
}

absl::Status LoadLayer(const TensorChecker& check, const ModelConfig& c,
                       int layer, const WeightSelection& selection,
                       LayerWeights* out) {
  const std::string prefix = absl::StrCat("model.layers.", layer, ".");
  const int64_t hidden = c.hidden_size;
  const int64_t q_dim = static_cast<int64_t>(c.num_heads) * c.head_dim;
  const int64_t kv_dim = static_cast<int64_t>(c.num_kv_heads) * c.head_dim;
  if (selection.dense_parts) {
    MOE_ASSIGN_OR_RETURN(
        out->input_norm,
        check.Vector(prefix + "input_layernorm.weight", hidden));
    MOE_ASSIGN_OR_RETURN(
        out->post_attention_norm,
        check.Vector(prefix + "post_attention_layernorm.weight", hidden));
    const std::string attn = prefix + "self_attn.";
    MOE_ASSIGN_OR_RETURN(out->q_proj,
                         check.Matrix(attn + "q_proj.weight", q_dim, hidden));
    MOE_ASSIGN_OR_RETURN(out->k_proj,
                         check.Matrix(attn + "k_proj.weight", kv_dim, hidden));
    MOE_ASSIGN_OR_RETURN(out->v_proj,
                         check.Matrix(attn + "v_proj.weight", kv_dim, hidden));
    MOE_ASSIGN_OR_RETURN(out->o_proj,
                         check.Matrix(attn + "o_proj.weight", hidden, q_dim));
    MOE_RETURN_IF_ERROR(
        LoadGate(check, c, prefix + "block_sparse_moe.gate.", out));
  }
  out->experts.resize(c.num_experts);
  for (int e = 0; e < c.num_experts; ++e) {
    if (selection.expert_filter && !selection.expert_filter(layer, e)) continue;
    const std::string expert =
        absl::StrCat(prefix, "block_sparse_moe.experts.", e, ".");
    ExpertWeights& weights = out->experts[e];
    const int64_t inter = c.intermediate_size;
    MOE_ASSIGN_OR_RETURN(weights.w1,
                         check.Matrix(expert + "w1.weight", inter, hidden));
    MOE_ASSIGN_OR_RETURN(weights.w3,
                         check.Matrix(expert + "w3.weight", inter, hidden));
    MOE_ASSIGN_OR_RETURN(weights.w2,
                         check.Matrix(expert + "w2.weight", hidden, inter));
    weights.loaded = true;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<ModelWeights>> ModelWeights::Load(
    const std::string& directory, const WeightSelection& selection) {
  auto weights = std::unique_ptr<ModelWeights>(new ModelWeights());
  MOE_ASSIGN_OR_RETURN(weights->config_, LoadModelConfig(directory));
  MOE_ASSIGN_OR_RETURN(weights->checkpoint_, Checkpoint::Open(directory));
  const ModelConfig& c = weights->config_;
  const TensorChecker check(*weights->checkpoint_);
  if (selection.dense_parts) {
    MOE_ASSIGN_OR_RETURN(
        weights->embed_tokens_,
        check.Matrix("model.embed_tokens.weight", c.vocab_size, c.hidden_size));
    MOE_ASSIGN_OR_RETURN(weights->final_norm_,
                         check.Vector("model.norm.weight", c.hidden_size));
    if (c.tie_word_embeddings &&
        weights->checkpoint_->Find("lm_head.weight") == nullptr) {
      weights->lm_head_ = weights->embed_tokens_;
    } else {
      MOE_ASSIGN_OR_RETURN(
          weights->lm_head_,
          check.Matrix("lm_head.weight", c.vocab_size, c.hidden_size));
    }
  }
  weights->layers_.resize(c.num_layers);
  for (int layer = 0; layer < c.num_layers; ++layer) {
    MOE_RETURN_IF_ERROR(
        LoadLayer(check, c, layer, selection, &weights->layers_[layer]));
  }
  return weights;
}

}  // namespace moe

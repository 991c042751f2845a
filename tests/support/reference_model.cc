#include "tests/support/reference_model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "core/model/checkpoint.h"
#include "nlohmann/json.hpp"

namespace moe::testing {
namespace {

using Matrix = std::vector<std::vector<double>>;

}  // namespace

double DecodeStoredValue(DType dtype, const uint8_t* p) {
  switch (dtype) {
    case DType::kF32: {
      float value;
      std::memcpy(&value, p, 4);
      return value;
    }
    case DType::kBF16: {
      const uint32_t bits = static_cast<uint32_t>(p[0] | (p[1] << 8)) << 16;
      float value;
      std::memcpy(&value, &bits, 4);
      return value;
    }
    case DType::kF16: {
      const int bits = p[0] | (p[1] << 8);
      const int exponent = (bits >> 10) & 31;
      const int mantissa = bits & 1023;
      const double magnitude = exponent == 0
                                   ? std::ldexp(mantissa, -24)
                                   : std::ldexp(1024 + mantissa, exponent - 25);
      return (bits & 0x8000) ? -magnitude : magnitude;
    }
    case DType::kF8E4M3: {
      const int exponent = (p[0] >> 3) & 15;
      const int mantissa = p[0] & 7;
      const double magnitude =
          exponent == 0
              ? mantissa / 8.0 * std::ldexp(1.0, -6)
              : (1.0 + mantissa / 8.0) * std::ldexp(1.0, exponent - 7);
      return (p[0] & 0x80) ? -magnitude : magnitude;
    }
  }
  return NAN;
}

namespace {

std::vector<double> DecodeAll(const TensorView& view) {
  std::vector<double> values(view.num_elements());
  const size_t size = DTypeSize(view.dtype);
  for (size_t i = 0; i < values.size(); ++i)
    values[i] = DecodeStoredValue(view.dtype, view.data + i * size);
  return values;
}

const TensorView& Get(const Checkpoint& checkpoint, const std::string& name) {
  const TensorView* view = checkpoint.Find(name);
  EXPECT_NE(view, nullptr) << name;
  return *view;
}

std::vector<double> Vector(const Checkpoint& checkpoint,
                           const std::string& name) {
  return DecodeAll(Get(checkpoint, name));
}

// A [rows, cols] weight, with FP8 scales (one or one per row) applied.
Matrix ReadMatrix(const Checkpoint& checkpoint, const std::string& name) {
  const TensorView& view = Get(checkpoint, name);
  const std::vector<double> flat = DecodeAll(view);
  const int64_t rows = view.shape[0];
  const int64_t cols = view.shape[1];
  std::vector<double> scales(rows, 1.0);
  if (view.dtype == DType::kF8E4M3) {
    const std::vector<double> stored = Vector(checkpoint, name + "_scale");
    for (int64_t r = 0; r < rows; ++r)
      scales[r] = stored.size() == 1 ? stored[0] : stored[r];
  }
  Matrix matrix(rows, std::vector<double>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c)
      matrix[r][c] = flat[r * cols + c] * scales[r];
  }
  return matrix;
}

std::vector<double> MatVec(const Matrix& w, const std::vector<double>& x) {
  std::vector<double> y(w.size(), 0.0);
  for (size_t r = 0; r < w.size(); ++r) {
    for (size_t c = 0; c < x.size(); ++c) y[r] += w[r][c] * x[c];
  }
  return y;
}

std::vector<double> RmsNormRef(const std::vector<double>& x,
                               const std::vector<double>& w, double eps) {
  double mean_square = 0.0;
  for (double v : x) mean_square += v * v;
  mean_square /= x.size();
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    y[i] = x[i] / std::sqrt(mean_square + eps) * w[i];
  return y;
}

// Rotates each head of `x` (heads * head_dim values) for position `pos`:
// x * cos + rotate_half(x) * sin, rotate_half(a, b) = (-b, a).
void RotateRef(std::vector<double>& x, int head_dim, int pos, double theta) {
  const int half = head_dim / 2;
  for (size_t head = 0; head < x.size() / head_dim; ++head) {
    double* h = x.data() + head * head_dim;
    for (int i = 0; i < half; ++i) {
      const double angle = pos / std::pow(theta, 2.0 * i / head_dim);
      const double a = h[i], b = h[i + half];
      h[i] = a * std::cos(angle) - b * std::sin(angle);
      h[i + half] = b * std::cos(angle) + a * std::sin(angle);
    }
  }
}

std::vector<double> SoftmaxRef(std::vector<double> z) {
  const double max = *std::max_element(z.begin(), z.end());
  double sum = 0.0;
  for (double& v : z) sum += (v = std::exp(v - max));
  for (double& v : z) v /= sum;
  return z;
}

}  // namespace

std::unique_ptr<ReferenceModel> ReferenceModel::Load(
    const std::string& directory) {
  auto config = LoadModelConfig(directory);
  EXPECT_TRUE(config.ok()) << config.status();
  auto checkpoint = Checkpoint::Open(directory);
  EXPECT_TRUE(checkpoint.ok()) << checkpoint.status();
  if (!config.ok() || !checkpoint.ok()) return nullptr;
  const Checkpoint& ckpt = **checkpoint;
  auto model = std::unique_ptr<ReferenceModel>(new ReferenceModel());
  model->config_ = *config;
  std::ifstream file(directory + "/config.json");
  const nlohmann::json json = nlohmann::json::parse(file);
  const std::string type = json.value("model_type", "");
  if (type == "skywork" || type == "skywork_moe") {
    model->flags_ = {json.value("moe_2layer_gate", true),
                     json.value("moe_use_mixtral_gating", false),
                     json.value("moe_feature_no_mul_topk", false)};
  }
  model->embed_ = ReadMatrix(ckpt, "model.embed_tokens.weight");
  model->lm_head_ = ckpt.Find("lm_head.weight") != nullptr
                        ? ReadMatrix(ckpt, "lm_head.weight")
                        : model->embed_;
  model->final_norm_ = Vector(ckpt, "model.norm.weight");
  for (int l = 0; l < config->num_layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    Layer layer;
    layer.input_norm = Vector(ckpt, p + "input_layernorm.weight");
    layer.post_norm = Vector(ckpt, p + "post_attention_layernorm.weight");
    layer.q = ReadMatrix(ckpt, p + "self_attn.q_proj.weight");
    layer.k = ReadMatrix(ckpt, p + "self_attn.k_proj.weight");
    layer.v = ReadMatrix(ckpt, p + "self_attn.v_proj.weight");
    layer.o = ReadMatrix(ckpt, p + "self_attn.o_proj.weight");
    if (model->flags_.two_layer_gate) {
      layer.gate_hidden =
          ReadMatrix(ckpt, p + "block_sparse_moe.gate.wg.0.weight");
      layer.gate = ReadMatrix(ckpt, p + "block_sparse_moe.gate.wg.2.weight");
    } else {
      layer.gate = ReadMatrix(ckpt, p + "block_sparse_moe.gate.weight");
    }
    for (int e = 0; e < config->num_experts; ++e) {
      const std::string x =
          absl::StrCat(p, "block_sparse_moe.experts.", e, ".");
      layer.experts.push_back({ReadMatrix(ckpt, x + "w1.weight"),
                               ReadMatrix(ckpt, x + "w3.weight"),
                               ReadMatrix(ckpt, x + "w2.weight")});
    }
    model->layers_.push_back(std::move(layer));
  }
  return model;
}

std::vector<std::pair<int, double>> ReferenceModel::Route(
    std::vector<double> z, double& margin) const {
  const ModelConfig& c = config_;
  if (c.use_logits_norm && z.size() > 1) {
    double mean = 0.0, var = 0.0;
    for (double value : z) mean += value / z.size();
    for (double value : z)
      var += (value - mean) * (value - mean) / (z.size() - 1);
    if (var > 0) {
      for (double& value : z) value /= std::sqrt(var) / c.gate_norm_std;
    }
  }
  // Experts by descending logit (and so probability), lower id first.
  std::vector<int> order(z.size());
  for (size_t e = 0; e < order.size(); ++e) order[e] = static_cast<int>(e);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return z[a] > z[b]; });
  const std::vector<double> probs = SoftmaxRef(z);
  if (c.top_k < c.num_experts) {
    margin =
        std::min(margin, probs[order[c.top_k - 1]] - probs[order[c.top_k]]);
  }
  std::vector<double> chosen;
  if (flags_.mixtral_gating) {
    // The top_k logits, then a softmax over only those.
    for (int j = 0; j < c.top_k; ++j) chosen.push_back(z[order[j]]);
    chosen = SoftmaxRef(chosen);
  } else {
    // A softmax over all, the top_k, renormalized.
    double total = 0.0;
    for (int j = 0; j < c.top_k; ++j) total += probs[order[j]];
    for (int j = 0; j < c.top_k; ++j) chosen.push_back(probs[order[j]] / total);
  }
  std::vector<std::pair<int, double>> routes;
  for (int j = 0; j < c.top_k; ++j) routes.emplace_back(order[j], chosen[j]);
  return routes;
}

ReferenceModel::Output ReferenceModel::Run(
    const std::vector<int32_t>& tokens) const {
  const ModelConfig& c = config_;
  const int t_count = static_cast<int>(tokens.size());
  const int hd = c.head_dim;
  const int group = c.num_heads / c.num_kv_heads;
  Output output;
  output.routing_margin.assign(t_count, INFINITY);
  Matrix x;
  for (int32_t token : tokens) x.push_back(embed_[token]);
  for (const Layer& layer : layers_) {
    Matrix q(t_count), k(t_count), v(t_count);
    for (int t = 0; t < t_count; ++t) {
      const std::vector<double> h =
          RmsNormRef(x[t], layer.input_norm, c.rms_norm_eps);
      q[t] = MatVec(layer.q, h);
      k[t] = MatVec(layer.k, h);
      v[t] = MatVec(layer.v, h);
      RotateRef(q[t], hd, t, c.rope_theta);
      RotateRef(k[t], hd, t, c.rope_theta);
    }
    for (int t = 0; t < t_count; ++t) {
      std::vector<double> attended(c.num_heads * hd, 0.0);
      for (int head = 0; head < c.num_heads; ++head) {
        const int kv = head / group;
        const int first =
            c.sliding_window > 0 ? std::max(0, t - c.sliding_window + 1) : 0;
        std::vector<double> scores;
        for (int s = first; s <= t; ++s) {
          double dot = 0.0;
          for (int d = 0; d < hd; ++d)
            dot += q[t][head * hd + d] * k[s][kv * hd + d];
          scores.push_back(dot / std::sqrt(static_cast<double>(hd)));
        }
        scores = SoftmaxRef(scores);
        for (int s = first; s <= t; ++s) {
          for (int d = 0; d < hd; ++d) {
            attended[head * hd + d] += scores[s - first] * v[s][kv * hd + d];
          }
        }
      }
      const std::vector<double> projected = MatVec(layer.o, attended);
      for (int i = 0; i < c.hidden_size; ++i) x[t][i] += projected[i];

      const std::vector<double> h =
          RmsNormRef(x[t], layer.post_norm, c.rms_norm_eps);
      std::vector<double> z;
      if (flags_.two_layer_gate) {
        std::vector<double> middle = MatVec(layer.gate_hidden, h);
        for (double& value : middle) value = std::tanh(value);
        z = MatVec(layer.gate, middle);
      } else {
        z = MatVec(layer.gate, h);
      }
      // Skywork-MoE's modeling code feeds the experts h * top_k unless
      // moe_use_mixtral_gating or moe_feature_no_mul_topk; the gate saw h.
      const bool scaled = c.architecture == Architecture::kSkyworkMoe &&
                          !flags_.mixtral_gating && !flags_.no_mul_topk;
      std::vector<double> input = h;
      if (scaled) {
        for (double& value : input) value *= c.top_k;
      }
      for (const auto& [expert_id, weight] :
           Route(std::move(z), output.routing_margin[t])) {
        const Expert& expert = layer.experts[expert_id];
        const std::vector<double> g = MatVec(expert.w1, input);
        const std::vector<double> u = MatVec(expert.w3, input);
        std::vector<double> act(g.size());
        for (size_t i = 0; i < g.size(); ++i)
          act[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
        const std::vector<double> out = MatVec(expert.w2, act);
        for (int i = 0; i < c.hidden_size; ++i) x[t][i] += weight * out[i];
      }
    }
  }
  for (int t = 0; t < t_count; ++t) {
    output.logits.push_back(
        MatVec(lm_head_, RmsNormRef(x[t], final_norm_, c.rms_norm_eps)));
  }
  return output;
}

}  // namespace moe::testing

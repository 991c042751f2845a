#include "tests/support/dense_llama_reference.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

namespace moe::testing {
namespace {

using Matrix = std::vector<std::vector<double>>;  // [tokens][features]

double Metadata(const GgufFile& gguf, const std::string& key, double fallback) {
  const auto it = gguf.metadata().find(key);
  return it == gguf.metadata().end() ? fallback : it->get<double>();
}

// A GGUF weight as float values with its GGML shape {cols, rows}.
struct Weight {
  std::vector<float> values;
  int64_t rows = 0, cols = 0;
};

Weight Load(const GgufFile& gguf, const std::string& name) {
  const GgufTensor* tensor = gguf.Find(name);
  EXPECT_NE(tensor, nullptr) << name;
  if (tensor == nullptr) return {};
  auto values = gguf.ReadFloats(*tensor);
  EXPECT_TRUE(values.ok()) << values.status();
  Weight weight{*std::move(values),
                tensor->dims.size() > 1 ? tensor->dims[1] : 1, tensor->dims[0]};
  return weight;
}

// y = x · Wᵀ for every token.
Matrix Linear(const Matrix& x, const Weight& w) {
  Matrix y(x.size(), std::vector<double>(w.rows));
  for (size_t t = 0; t < x.size(); ++t) {
    for (int64_t r = 0; r < w.rows; ++r) {
      double sum = 0;
      const float* row = &w.values[r * w.cols];
      for (int64_t c = 0; c < w.cols; ++c) sum += x[t][c] * row[c];
      y[t][r] = sum;
    }
  }
  return y;
}

Matrix RmsNorm(const Matrix& x, const Weight& g, double eps) {
  Matrix y = x;
  for (auto& row : y) {
    double squares = 0;
    for (double v : row) squares += v * v;
    const double inverse = 1.0 / std::sqrt(squares / row.size() + eps);
    for (size_t i = 0; i < row.size(); ++i) row[i] *= inverse * g.values[i];
  }
  return y;
}

// llama.cpp's "normal" rotary mode: pairs (2j, 2j+1) of each head rotate by
// position · theta^(−2j / head_dim).
void RotateInterleaved(Matrix& x, int head_dim, double theta) {
  for (size_t t = 0; t < x.size(); ++t) {
    for (size_t head = 0; head < x[t].size() / head_dim; ++head) {
      double* v = &x[t][head * head_dim];
      for (int j = 0; j < head_dim / 2; ++j) {
        const double angle = t * std::pow(theta, -2.0 * j / head_dim);
        const double a = v[2 * j], b = v[2 * j + 1];
        v[2 * j] = a * std::cos(angle) - b * std::sin(angle);
        v[2 * j + 1] = a * std::sin(angle) + b * std::cos(angle);
      }
    }
  }
}

Matrix Attention(const Matrix& q, const Matrix& k, const Matrix& v, int heads,
                 int kv_heads, int head_dim) {
  Matrix out(q.size(), std::vector<double>(heads * head_dim, 0.0));
  for (size_t t = 0; t < q.size(); ++t) {
    for (int h = 0; h < heads; ++h) {
      const int kv = h / (heads / kv_heads);
      std::vector<double> scores(t + 1);
      double best = -1e300;
      for (size_t s = 0; s <= t; ++s) {
        double dot = 0;
        for (int d = 0; d < head_dim; ++d) {
          dot += q[t][h * head_dim + d] * k[s][kv * head_dim + d];
        }
        scores[s] = dot / std::sqrt(static_cast<double>(head_dim));
        best = std::max(best, scores[s]);
      }
      double total = 0;
      for (double& score : scores) total += score = std::exp(score - best);
      for (size_t s = 0; s <= t; ++s) {
        for (int d = 0; d < head_dim; ++d) {
          out[t][h * head_dim + d] +=
              scores[s] / total * v[s][kv * head_dim + d];
        }
      }
    }
  }
  return out;
}

void AddInto(Matrix& x, const Matrix& y) {
  for (size_t t = 0; t < x.size(); ++t) {
    for (size_t i = 0; i < x[t].size(); ++i) x[t][i] += y[t][i];
  }
}

}  // namespace

std::vector<std::vector<double>> DenseLlamaLogits(
    const GgufFile& gguf, const std::vector<int32_t>& tokens) {
  const int layers = static_cast<int>(Metadata(gguf, "llama.block_count", 0));
  const int heads =
      static_cast<int>(Metadata(gguf, "llama.attention.head_count", 0));
  const int kv_heads =
      static_cast<int>(Metadata(gguf, "llama.attention.head_count_kv", heads));
  const int hidden =
      static_cast<int>(Metadata(gguf, "llama.embedding_length", 0));
  const int head_dim = hidden / heads;
  const double eps =
      Metadata(gguf, "llama.attention.layer_norm_rms_epsilon", 1e-5);
  const double theta = Metadata(gguf, "llama.rope.freq_base", 10000.0);

  const Weight embeddings = Load(gguf, "token_embd.weight");
  Matrix x(tokens.size(), std::vector<double>(hidden));
  for (size_t t = 0; t < tokens.size(); ++t) {
    for (int i = 0; i < hidden; ++i) {
      x[t][i] = embeddings.values[tokens[t] * int64_t{hidden} + i];
    }
  }
  for (int layer = 0; layer < layers; ++layer) {
    const std::string p = "blk." + std::to_string(layer) + ".";
    const Matrix normed = RmsNorm(x, Load(gguf, p + "attn_norm.weight"), eps);
    Matrix q = Linear(normed, Load(gguf, p + "attn_q.weight"));
    Matrix k = Linear(normed, Load(gguf, p + "attn_k.weight"));
    const Matrix v = Linear(normed, Load(gguf, p + "attn_v.weight"));
    RotateInterleaved(q, head_dim, theta);
    RotateInterleaved(k, head_dim, theta);
    AddInto(x, Linear(Attention(q, k, v, heads, kv_heads, head_dim),
                      Load(gguf, p + "attn_output.weight")));
    const Matrix ffn_in = RmsNorm(x, Load(gguf, p + "ffn_norm.weight"), eps);
    Matrix gate = Linear(ffn_in, Load(gguf, p + "ffn_gate.weight"));
    const Matrix up = Linear(ffn_in, Load(gguf, p + "ffn_up.weight"));
    for (size_t t = 0; t < gate.size(); ++t) {
      for (size_t i = 0; i < gate[t].size(); ++i) {
        const double g = gate[t][i];
        gate[t][i] = g / (1.0 + std::exp(-g)) * up[t][i];
      }
    }
    AddInto(x, Linear(gate, Load(gguf, p + "ffn_down.weight")));
  }
  const Matrix final_x = RmsNorm(x, Load(gguf, "output_norm.weight"), eps);
  const bool tied = gguf.Find("output.weight") == nullptr;
  return Linear(final_x, tied ? embeddings : Load(gguf, "output.weight"));
}

}  // namespace moe::testing

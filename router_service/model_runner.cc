#include "router_service/model_runner.h"

#include <numeric>

#include "absl/strings/str_cat.h"
#include "core/attention.h"
#include "core/cpu_ops.h"
#include "core/gating.h"
#include "core/linear.h"
#include "core/status_macros.h"

namespace moe {

ModelRunner::ModelRunner(const ModelWeights& weights, ExpertDispatch& experts,
                         ThreadPool& pool)
    : weights_(weights),
      experts_(experts),
      pool_(pool),
      routed_counts_(static_cast<size_t>(weights.config().num_layers) *
                     weights.config().num_experts) {}

SequenceKvCache ModelRunner::NewCache() const {
  const ModelConfig& c = config();
  return SequenceKvCache(c.num_layers,
                         static_cast<int64_t>(c.num_kv_heads) * c.head_dim);
}

absl::StatusOr<std::vector<float>> ModelRunner::Forward(
    std::span<const int32_t> tokens, SequenceKvCache& cache, LogitsFor which) {
  const ModelConfig& c = config();
  const int64_t n = static_cast<int64_t>(tokens.size());
  const int64_t start = cache.length();
  if (n == 0) return absl::InvalidArgumentError("no tokens to run");
  if (start + n > c.max_position_embeddings) {
    return absl::OutOfRangeError(absl::StrCat(
        "sequence of ", start + n, " tokens exceeds the context length ",
        c.max_position_embeddings));
  }
  std::vector<float> hidden(static_cast<size_t>(n * c.hidden_size));
  for (int64_t i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= c.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", tokens[i], " at index ", i,
                       " is outside [0, ", c.vocab_size, ")"));
    }
    weights_.embed_tokens().DecodeRow(tokens[i],
                                      hidden.data() + i * c.hidden_size);
  }
  std::vector<int32_t> positions(n);
  std::iota(positions.begin(), positions.end(), static_cast<int32_t>(start));
  cache.Resize(start + n);
  for (int layer = 0; layer < c.num_layers; ++layer) {
    const absl::Status status =
        RunLayer(layer, start, positions, cache, hidden);
    if (!status.ok()) {
      cache.Resize(start);
      return status;
    }
  }
  const int64_t rows = which == LogitsFor::kAllTokens ? n : 1;
  const float* last = hidden.data() + (n - rows) * c.hidden_size;
  std::vector<float> normed(static_cast<size_t>(rows * c.hidden_size));
  RmsNorm(last, rows, weights_.final_norm(), c.rms_norm_eps, normed.data());
  std::vector<float> logits(static_cast<size_t>(rows * c.vocab_size));
  Linear(weights_.lm_head(), normed.data(), rows, logits.data(), pool_);
  return logits;
}

absl::Status ModelRunner::RunLayer(int layer, int64_t start,
                                   std::span<const int32_t> positions,
                                   SequenceKvCache& cache,
                                   std::vector<float>& hidden) {
  const ModelConfig& c = config();
  const LayerWeights& w = weights_.layers()[layer];
  const int64_t n = static_cast<int64_t>(positions.size());
  const int64_t h = c.hidden_size;
  const int64_t q_dim = static_cast<int64_t>(c.num_heads) * c.head_dim;
  const int64_t kv_dim = cache.kv_dim();

  std::vector<float> normed(n * h);
  RmsNorm(hidden.data(), n, w.input_norm, c.rms_norm_eps, normed.data());
  std::vector<float> q(n * q_dim);
  std::vector<float> k(n * kv_dim);
  float* const v = cache.values(layer) + start * kv_dim;
  const LinearJob qkv[] = {{&w.q_proj, normed.data(), n, q.data()},
                           {&w.k_proj, normed.data(), n, k.data()},
                           {&w.v_proj, normed.data(), n, v}};
  RunLinear(qkv, pool_);
  ApplyRope(q.data(), n, c.num_heads, c.head_dim, positions.data(),
            c.rope_theta);
  ApplyRope(k.data(), n, c.num_kv_heads, c.head_dim, positions.data(),
            c.rope_theta);
  std::copy(k.begin(), k.end(), cache.keys(layer) + start * kv_dim);

  std::vector<float> attended(n * q_dim);
  const AttentionShape shape{c.num_heads, c.num_kv_heads, c.head_dim,
                             c.sliding_window};
  CausalAttention(shape, q.data(), n, start, cache.keys(layer),
                  cache.values(layer), attended.data(), pool_);
  std::vector<float> projected(n * h);
  Linear(w.o_proj, attended.data(), n, projected.data(), pool_);
  for (int64_t i = 0; i < n * h; ++i) hidden[i] += projected[i];

  RmsNorm(hidden.data(), n, w.post_attention_norm, c.rms_norm_eps,
          normed.data());
  std::vector<float> gate_logits(n * c.num_experts);
  Linear(w.gate, normed.data(), n, gate_logits.data(), pool_);
  std::vector<int32_t> expert_ids(n * c.top_k);
  std::vector<float> expert_weights(n * c.top_k);
  SelectExperts(c, gate_logits.data(), n, expert_ids.data(),
                expert_weights.data());
  std::vector<ExpertAssignment> assignments;
  assignments.reserve(n * c.top_k);
  for (int64_t i = 0; i < n * c.top_k; ++i) {
    assignments.push_back(
        {static_cast<int32_t>(i / c.top_k), expert_ids[i], expert_weights[i]});
    ++routed_counts_[static_cast<size_t>(layer) * c.num_experts +
                     expert_ids[i]];
  }
  MOE_RETURN_IF_ERROR(
      experts_.Compute(layer, normed.data(), n, assignments, projected.data()));
  for (int64_t i = 0; i < n * h; ++i) hidden[i] += projected[i];
  return absl::OkStatus();
}

}  // namespace moe

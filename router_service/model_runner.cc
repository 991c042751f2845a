#include "router_service/model_runner.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/attention.h"
#include "core/cpu_ops.h"
#include "core/gating.h"
#include "core/linear.h"

namespace moe {

// The rows of a batched forward pass: every live step's tokens, concatenated.
struct ModelRunner::BatchRows {
  struct Member {
    size_t step;     // index into the caller's steps
    int64_t offset;  // first row
    int64_t n;       // rows
    int64_t start;   // cache length before the step
    SequenceKvCache* cache;
    absl::Status status;  // the first failure of this step's rows
  };
  std::vector<Member> members;
  std::vector<int32_t> row_member;  // row -> index into members
  std::vector<int32_t> positions;   // per row
  std::vector<absl::Time> row_deadlines;
  std::vector<float> hidden;  // [rows, hidden]

  int64_t rows() const { return static_cast<int64_t>(row_member.size()); }
};

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
  const SequenceStep step[] = {{tokens, &cache, which}};
  return std::move(ForwardBatch(step)[0]);
}

absl::Status ModelRunner::CheckStep(const SequenceStep& step) const {
  const ModelConfig& c = config();
  const int64_t n = static_cast<int64_t>(step.tokens.size());
  const int64_t start = step.cache->length();
  if (n == 0) return absl::InvalidArgumentError("no tokens to run");
  if (start + n > c.max_position_embeddings) {
    return absl::OutOfRangeError(absl::StrCat(
        "sequence of ", start + n, " tokens exceeds the context length ",
        c.max_position_embeddings));
  }
  for (int64_t i = 0; i < n; ++i) {
    if (step.tokens[i] < 0 || step.tokens[i] >= c.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", step.tokens[i], " at index ", i,
                       " is outside [0, ", c.vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

std::vector<absl::StatusOr<std::vector<float>>> ModelRunner::ForwardBatch(
    std::span<const SequenceStep> steps) {
  const ModelConfig& c = config();
  const int64_t h = c.hidden_size;
  std::vector<absl::StatusOr<std::vector<float>>> results(steps.size());
  BatchRows batch;
  for (size_t s = 0; s < steps.size(); ++s) {
    const SequenceStep& step = steps[s];
    if (absl::Status status = CheckStep(step); !status.ok()) {
      results[s] = status;
      continue;
    }
    const int64_t n = static_cast<int64_t>(step.tokens.size());
    const int64_t start = step.cache->length();
    const int32_t member = static_cast<int32_t>(batch.members.size());
    batch.members.push_back({s, batch.rows(), n, start, step.cache, {}});
    for (int64_t i = 0; i < n; ++i) {
      batch.row_member.push_back(member);
      batch.positions.push_back(static_cast<int32_t>(start + i));
      batch.row_deadlines.push_back(step.deadline);
    }
    step.cache->Resize(start + n);
  }
  if (batch.members.empty()) return results;

  batch.hidden.resize(batch.rows() * h);
  for (const BatchRows::Member& m : batch.members) {
    for (int64_t i = 0; i < m.n; ++i) {
      weights_.embed_tokens().DecodeRow(
          steps[m.step].tokens[i], batch.hidden.data() + (m.offset + i) * h);
    }
  }
  for (int layer = 0; layer < c.num_layers; ++layer) RunLayer(layer, batch);

  // The LM head runs once over the rows whose logits are wanted.
  std::vector<int64_t> logit_rows;
  for (const BatchRows::Member& m : batch.members) {
    if (!m.status.ok()) continue;
    const bool all = steps[m.step].logits_for == LogitsFor::kAllTokens;
    for (int64_t i = all ? 0 : m.n - 1; i < m.n; ++i) {
      logit_rows.push_back(m.offset + i);
    }
  }
  const int64_t rows = static_cast<int64_t>(logit_rows.size());
  std::vector<float> last(rows * h);
  for (int64_t r = 0; r < rows; ++r) {
    std::copy_n(batch.hidden.data() + logit_rows[r] * h, h,
                last.data() + r * h);
  }
  std::vector<float> normed(rows * h);
  RmsNorm(last.data(), rows, weights_.final_norm(), c.rms_norm_eps,
          normed.data());
  std::vector<float> logits(rows * c.vocab_size);
  Linear(weights_.lm_head(), normed.data(), rows, logits.data(), pool_);

  const float* next = logits.data();
  for (const BatchRows::Member& m : batch.members) {
    if (!m.status.ok()) {
      m.cache->Resize(m.start);
      results[m.step] = m.status;
      continue;
    }
    const bool all = steps[m.step].logits_for == LogitsFor::kAllTokens;
    const int64_t count = (all ? m.n : 1) * c.vocab_size;
    results[m.step] = std::vector<float>(next, next + count);
    next += count;
  }
  return results;
}

void ModelRunner::RunLayer(int layer, BatchRows& batch) {
  const ModelConfig& c = config();
  const LayerWeights& w = weights_.layers()[layer];
  const int64_t n = batch.rows();
  const int64_t h = c.hidden_size;
  const int64_t q_dim = static_cast<int64_t>(c.num_heads) * c.head_dim;
  const int64_t kv_dim = static_cast<int64_t>(c.num_kv_heads) * c.head_dim;
  std::vector<float>& hidden = batch.hidden;

  std::vector<float> normed(n * h);
  RmsNorm(hidden.data(), n, w.input_norm, c.rms_norm_eps, normed.data());
  std::vector<float> q(n * q_dim);
  std::vector<float> k(n * kv_dim);
  std::vector<float> v(n * kv_dim);
  const LinearJob qkv[] = {{&w.q_proj, normed.data(), n, q.data()},
                           {&w.k_proj, normed.data(), n, k.data()},
                           {&w.v_proj, normed.data(), n, v.data()}};
  RunLinear(qkv, pool_);
  ApplyRope(q.data(), n, c.num_heads, c.head_dim, batch.positions.data(),
            c.rope_theta);
  ApplyRope(k.data(), n, c.num_kv_heads, c.head_dim, batch.positions.data(),
            c.rope_theta);

  std::vector<float> attended(n * q_dim);
  const AttentionShape shape{c.num_heads, c.num_kv_heads, c.head_dim,
                             c.sliding_window};
  for (const BatchRows::Member& m : batch.members) {
    SequenceKvCache& cache = *m.cache;
    std::copy_n(k.data() + m.offset * kv_dim, m.n * kv_dim,
                cache.keys(layer) + m.start * kv_dim);
    std::copy_n(v.data() + m.offset * kv_dim, m.n * kv_dim,
                cache.values(layer) + m.start * kv_dim);
    CausalAttention(shape, q.data() + m.offset * q_dim, m.n, m.start,
                    cache.keys(layer), cache.values(layer),
                    attended.data() + m.offset * q_dim, pool_);
  }
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
  // Rows of steps that already failed are not sent again: their results
  // would be dropped, and a slow worker would be waited for once more.
  std::vector<ExpertAssignment> assignments;
  assignments.reserve(n * c.top_k);
  for (int64_t i = 0; i < n * c.top_k; ++i) {
    const int32_t row = static_cast<int32_t>(i / c.top_k);
    if (!batch.members[batch.row_member[row]].status.ok()) continue;
    assignments.push_back({row, expert_ids[i], expert_weights[i]});
    ++routed_counts_[static_cast<size_t>(layer) * c.num_experts +
                     expert_ids[i]];
  }
  std::vector<RowFailure> failures;
  const ExpertBatch experts{layer, normed.data(), n, assignments,
                            batch.row_deadlines};
  const absl::Status status =
      experts_.Compute(experts, projected.data(), failures);
  for (BatchRows::Member& m : batch.members) {
    if (!status.ok() && m.status.ok()) m.status = status;
  }
  for (const RowFailure& failure : failures) {
    absl::Status& member = batch.members[batch.row_member[failure.row]].status;
    if (member.ok()) member = failure.status;
  }
  for (int64_t i = 0; i < n * h; ++i) hidden[i] += projected[i];
}

}  // namespace moe

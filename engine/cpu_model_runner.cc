#include "engine/cpu_model_runner.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/kernels/attention.h"
#include "core/kernels/cpu_ops.h"
#include "core/kernels/gating.h"
#include "core/kernels/linear.h"

namespace moe {
// Rows of a batched forward pass that move through the layers together: the
// tokens of some of the steps, concatenated.
struct CpuModelRunner::MicroBatch {
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
  // The layer in flight: its normalized rows, their experts, and where the
  // expert results land.
  std::vector<float> normed;
  std::vector<ExpertAssignment> assignments;
  std::vector<float> expert_out;

  int64_t rows() const { return static_cast<int64_t>(row_member.size()); }
};

CpuModelRunner::CpuModelRunner(const ModelWeights& weights,
                               ExpertDispatch& experts, ThreadPool& pool,
                               const ModelRunnerOptions& options)
    : ModelRunner(weights.config(), options, KvStorage::kHostFloat32),
      weights_(weights),
      experts_(experts),
      pool_(pool) {}

std::vector<CpuModelRunner::MicroBatch> CpuModelRunner::Split(
    std::span<const SequenceStep> steps,
    const std::vector<std::vector<size_t>>& groups) const {
  std::vector<MicroBatch> batches;
  for (const std::vector<size_t>& group : groups) {
    MicroBatch& batch = batches.emplace_back();
    for (size_t s : group) {
      const SequenceStep& step = steps[s];
      const int64_t n = static_cast<int64_t>(step.tokens.size());
      const int64_t start = step.cache->length();
      const int32_t member = static_cast<int32_t>(batch.members.size());
      batch.members.push_back({s, batch.rows(), n, start, step.cache, {}});
      for (int64_t i = 0; i < n; ++i) {
        batch.row_member.push_back(member);
        batch.positions.push_back(static_cast<int32_t>(start + i));
        batch.row_deadlines.push_back(step.deadline);
      }
    }
  }
  return batches;
}

std::vector<absl::StatusOr<std::vector<float>>> CpuModelRunner::ForwardBatch(
    std::span<const SequenceStep> steps) {
  const ModelConfig& c = config();
  const int64_t h = c.hidden_size;
  std::vector<absl::StatusOr<std::vector<float>>> results(steps.size());
  const std::vector<std::vector<size_t>> groups = CheckAndSplit(steps, results);
  if (groups.empty()) return results;
  std::vector<MicroBatch> batches = Split(steps, groups);
  ++mutable_counters().forward_passes;
  if (batches.size() > 1) ++mutable_counters().split_passes;

  for (MicroBatch& batch : batches) {
    batch.hidden.resize(batch.rows() * h);
    for (const MicroBatch::Member& m : batch.members) {
      m.cache->SetLength(m.start + m.n);
      for (int64_t i = 0; i < m.n; ++i) {
        weights_.embed_tokens().DecodeRow(
            steps[m.step].tokens[i], batch.hidden.data() + (m.offset + i) * h);
      }
    }
  }
  // The micro-batches take turns layer by layer: each one's attention for
  // the next layer runs while the others' rows are at the experts.
  std::vector<std::unique_ptr<PendingExperts>> in_flight(batches.size());
  auto attend_and_send = [&](size_t b, int layer) {
    const auto start = std::chrono::steady_clock::now();
    AttendAndRoute(layer, batches[b]);
    const double us = MicrosSince(start);
    mutable_counters().attention_us += us;
    const bool overlapped =
        std::any_of(in_flight.begin(), in_flight.end(),
                    [](const auto& pending) { return pending != nullptr; });
    if (overlapped) mutable_counters().overlapped_attention_us += us;
    const ExpertBatch experts{layer, batches[b].normed.data(),
                              batches[b].rows(), batches[b].assignments,
                              batches[b].row_deadlines};
    in_flight[b] = experts_.Start(experts, batches[b].expert_out.data());
  };
  for (size_t b = 0; b < batches.size(); ++b) attend_and_send(b, 0);
  for (int layer = 0; layer < c.num_layers; ++layer) {
    for (size_t b = 0; b < batches.size(); ++b) {
      std::unique_ptr<PendingExperts> pending = std::move(in_flight[b]);
      AddExperts(batches[b], *pending);
      if (layer + 1 < c.num_layers) attend_and_send(b, layer + 1);
    }
  }

  // The LM head runs once over the rows whose logits are wanted, from every
  // micro-batch.
  std::vector<const float*> logit_rows;
  for (const MicroBatch& batch : batches) {
    for (const MicroBatch::Member& m : batch.members) {
      if (!m.status.ok()) continue;
      const LogitsFor which = steps[m.step].logits_for;
      if (which == LogitsFor::kNone) continue;
      for (int64_t i = which == LogitsFor::kAllTokens ? 0 : m.n - 1; i < m.n;
           ++i) {
        logit_rows.push_back(batch.hidden.data() + (m.offset + i) * h);
      }
    }
  }
  const int64_t rows = static_cast<int64_t>(logit_rows.size());
  std::vector<float> last(rows * h);
  for (int64_t r = 0; r < rows; ++r) {
    std::copy_n(logit_rows[r], h, last.data() + r * h);
  }
  std::vector<float> normed(rows * h);
  RmsNorm(last.data(), rows, weights_.final_norm(), c.rms_norm_eps,
          normed.data());
  std::vector<float> logits(rows * c.vocab_size);
  if (rows > 0) {
    Linear(weights_.lm_head(), normed.data(), rows, logits.data(), pool_);
  }

  const float* next = logits.data();
  for (const MicroBatch& batch : batches) {
    for (const MicroBatch::Member& m : batch.members) {
      if (!m.status.ok()) {
        m.cache->SetLength(m.start);
        results[m.step] = m.status;
        continue;
      }
      const LogitsFor which = steps[m.step].logits_for;
      const int64_t count = (which == LogitsFor::kAllTokens   ? m.n
                             : which == LogitsFor::kLastToken ? 1
                                                              : 0) *
                            c.vocab_size;
      results[m.step] = std::vector<float>(next, next + count);
      next += count;
    }
  }
  return results;
}

void CpuModelRunner::AttendAndRoute(int layer, MicroBatch& batch) {
  const ModelConfig& c = config();
  const LayerWeights& w = weights_.layers()[layer];
  const int64_t n = batch.rows();
  const int64_t h = c.hidden_size;
  const int64_t q_dim = static_cast<int64_t>(c.num_heads) * c.head_dim;
  const int64_t kv_dim = static_cast<int64_t>(c.num_kv_heads) * c.head_dim;
  std::vector<float>& hidden = batch.hidden;

  std::vector<float>& normed = batch.normed;
  normed.resize(n * h);
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
  std::vector<const float*> key_blocks;
  std::vector<const float*> value_blocks;
  for (const MicroBatch::Member& m : batch.members) {
    const SequenceKvCache& cache = *m.cache;
    for (int64_t i = 0; i < m.n; ++i) {
      std::copy_n(k.data() + (m.offset + i) * kv_dim, kv_dim,
                  cache.key_row(layer, m.start + i));
      std::copy_n(v.data() + (m.offset + i) * kv_dim, kv_dim,
                  cache.value_row(layer, m.start + i));
    }
    CausalAttention(shape, q.data() + m.offset * q_dim, m.n, m.start,
                    cache.View(layer, key_blocks, value_blocks),
                    attended.data() + m.offset * q_dim, pool_);
  }
  std::vector<float> projected(n * h);
  Linear(w.o_proj, attended.data(), n, projected.data(), pool_);
  for (int64_t i = 0; i < n * h; ++i) hidden[i] += projected[i];

  RmsNorm(hidden.data(), n, w.post_attention_norm, c.rms_norm_eps,
          normed.data());
  std::vector<float> gate_logits(n * c.num_experts);
  if (c.two_layer_gate) {
    std::vector<float> gate_hidden(n * w.gate_hidden.rows);
    Linear(w.gate_hidden, normed.data(), n, gate_hidden.data(), pool_);
    for (float& value : gate_hidden) value = std::tanh(value);
    Linear(w.gate, gate_hidden.data(), n, gate_logits.data(), pool_);
  } else {
    Linear(w.gate, normed.data(), n, gate_logits.data(), pool_);
  }
  std::vector<int32_t> expert_ids(n * c.top_k);
  std::vector<float> expert_weights(n * c.top_k);
  SelectExperts(c, gate_logits.data(), n, expert_ids.data(),
                expert_weights.data());
  // The experts' input, formed here once: the gate saw it unscaled.
  if (const float scale = ExpertInputScale(c); scale != 1.0f) {
    for (float& value : normed) value *= scale;
  }
  // Rows of steps that already failed are not sent again: their results
  // would be dropped, and a slow worker would be waited for once more.
  batch.assignments.clear();
  for (int64_t i = 0; i < n * c.top_k; ++i) {
    const int32_t row = static_cast<int32_t>(i / c.top_k);
    if (!batch.members[batch.row_member[row]].status.ok()) continue;
    batch.assignments.push_back({row, expert_ids[i], expert_weights[i]});
    ++mutable_routed_counts()[static_cast<size_t>(layer) * c.num_experts +
                              expert_ids[i]];
  }
  batch.expert_out.resize(n * h);
}

void CpuModelRunner::AddExperts(MicroBatch& batch, PendingExperts& pending) {
  std::vector<RowFailure> failures;
  const auto start = std::chrono::steady_clock::now();
  const absl::Status status = pending.Wait(failures);
  mutable_counters().expert_wait_us += MicrosSince(start);
  for (MicroBatch::Member& m : batch.members) {
    if (!status.ok() && m.status.ok()) m.status = status;
  }
  for (const RowFailure& failure : failures) {
    absl::Status& member = batch.members[batch.row_member[failure.row]].status;
    if (member.ok()) member = failure.status;
  }
  const int64_t count = batch.rows() * config().hidden_size;
  for (int64_t i = 0; i < count; ++i) batch.hidden[i] += batch.expert_out[i];
}

}  // namespace moe

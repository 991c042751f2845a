#ifndef MOE_ROUTER_SERVICE_MODEL_RUNNER_H_
#define MOE_ROUTER_SERVICE_MODEL_RUNNER_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/model_weights.h"
#include "core/thread_pool.h"
#include "router_service/expert_dispatch.h"
#include "router_service/kv_cache.h"

namespace moe {

// Which rows of a step get logits: none (a prompt chunk that does not end
// the prompt), the last, or all (teacher forcing).
enum class LogitsFor { kNone, kLastToken, kAllTokens };

struct ModelRunnerOptions {
  KvCacheOptions kv_cache;
  // A batch of several sequences is split into this many micro-batches (1
  // or 2) that take turns: while one's rows are at the expert workers, the
  // other's attention runs. Useful only when the experts run elsewhere.
  int micro_batches = 1;
};

// Where the router's time went, summed over forward passes.
struct RunnerCounters {
  int64_t forward_passes = 0;
  int64_t split_passes = 0;  // passes run as two micro-batches
  // Norms, attention, projections and gate of every layer.
  double attention_us = 0;
  // The part of attention_us that ran while the other micro-batch's rows
  // were at the experts: the overlap.
  double overlapped_attention_us = 0;
  // Blocked waiting for expert results.
  double expert_wait_us = 0;
};

// One sequence's share of a batched forward pass: `tokens` continue the
// sequence held in `cache`.
struct SequenceStep {
  std::span<const int32_t> tokens;
  SequenceKvCache* cache = nullptr;
  LogitsFor logits_for = LogitsFor::kLastToken;
  // When the sequence's request stops waiting (passed to remote experts).
  absl::Time deadline = absl::InfiniteFuture();
};

// The forward pass of the MoE transformer for one sequence: embeddings, per
// layer RMSNorm, attention over the sequence's KV cache, RMSNorm, top-k
// gating and the experts through an ExpertDispatch, then the final norm and
// the LM head. Prefill and decode are the same call: `tokens` continue the
// sequence held in the cache. Several sequences run as one batch: every
// matrix (and each layer's expert dispatch) sees all their rows at once;
// only attention is per sequence. With two micro-batches, each layer's
// expert dispatch of one overlaps the other's attention (ping-pong).
class ModelRunner {
 public:
  ModelRunner(const ModelWeights& weights, ExpertDispatch& experts,
              ThreadPool& pool, const ModelRunnerOptions& options = {});

  const ModelConfig& config() const { return weights_.config(); }

  // The KV cache's blocks, shared by every sequence of this runner.
  KvBlockPool& kv_pool() { return kv_pool_; }
  // An empty cache that takes its blocks from kv_pool().
  SequenceKvCache NewCache() { return SequenceKvCache(kv_pool_); }

  // Runs `tokens` at positions [cache.length(), cache.length() + n) and
  // extends the cache (taking blocks from the pool as needed). Returns
  // logits [0, 1 or n, vocab]. On error the cache holds the positions it
  // held (RESOURCE_EXHAUSTED when the pool lacks blocks).
  absl::StatusOr<std::vector<float>> Forward(std::span<const int32_t> tokens,
                                             SequenceKvCache& cache,
                                             LogitsFor which);

  // Runs every step as one batch. Each step gets its own result: logits [1
  // or n, vocab], or an error (bad tokens, context overflow, or an expert
  // worker its rows needed failed) that leaves its cache as it was and does
  // not affect the other steps.
  std::vector<absl::StatusOr<std::vector<float>>> ForwardBatch(
      std::span<const SequenceStep> steps);

  // Rows routed to each (layer, expert) since construction, [layers x experts].
  const std::vector<int64_t>& routed_counts() const { return routed_counts_; }
  const RunnerCounters& counters() const { return counters_; }

 private:
  struct MicroBatch;
  absl::Status CheckStep(const SequenceStep& step) const;
  // The members of a batch split into micro-batches of about equal rows.
  std::vector<MicroBatch> Split(std::span<const SequenceStep> steps,
                                std::vector<size_t> valid) const;
  // One layer up to the experts: attention with its residual, then the
  // normalized rows and their expert assignments for the dispatch.
  void AttendAndRoute(int layer, MicroBatch& batch);
  // Adds the layer's expert results (or records the rows that failed).
  void AddExperts(MicroBatch& batch, PendingExperts& pending);

  const ModelWeights& weights_;
  ExpertDispatch& experts_;
  ThreadPool& pool_;
  const ModelRunnerOptions options_;
  KvBlockPool kv_pool_;
  std::vector<int64_t> routed_counts_;
  RunnerCounters counters_;
};

}  // namespace moe

#endif  // MOE_ROUTER_SERVICE_MODEL_RUNNER_H_

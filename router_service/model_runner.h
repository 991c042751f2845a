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

enum class LogitsFor { kLastToken, kAllTokens };

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
// only attention is per sequence.
class ModelRunner {
 public:
  ModelRunner(const ModelWeights& weights, ExpertDispatch& experts,
              ThreadPool& pool);

  const ModelConfig& config() const { return weights_.config(); }

  SequenceKvCache NewCache() const;

  // Runs `tokens` at positions [cache.length(), cache.length() + n) and
  // extends the cache. Returns logits [1 or n, vocab]. On error the cache is
  // left as it was.
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

 private:
  struct BatchRows;
  absl::Status CheckStep(const SequenceStep& step) const;
  void RunLayer(int layer, BatchRows& batch);

  const ModelWeights& weights_;
  ExpertDispatch& experts_;
  ThreadPool& pool_;
  std::vector<int64_t> routed_counts_;
};

}  // namespace moe

#endif  // MOE_ROUTER_SERVICE_MODEL_RUNNER_H_

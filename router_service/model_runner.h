#ifndef MOE_ROUTER_SERVICE_MODEL_RUNNER_H_
#define MOE_ROUTER_SERVICE_MODEL_RUNNER_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model_weights.h"
#include "core/thread_pool.h"
#include "router_service/expert_dispatch.h"
#include "router_service/kv_cache.h"

namespace moe {

enum class LogitsFor { kLastToken, kAllTokens };

// The forward pass of the MoE transformer for one sequence: embeddings, per
// layer RMSNorm, attention over the sequence's KV cache, RMSNorm, top-k
// gating and the experts through an ExpertDispatch, then the final norm and
// the LM head. Prefill and decode are the same call: `tokens` continue the
// sequence held in the cache.
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

  // Rows routed to each (layer, expert) since construction, [layers x experts].
  const std::vector<int64_t>& routed_counts() const { return routed_counts_; }

 private:
  absl::Status RunLayer(int layer, int64_t start,
                        std::span<const int32_t> positions,
                        SequenceKvCache& cache, std::vector<float>& hidden);

  const ModelWeights& weights_;
  ExpertDispatch& experts_;
  ThreadPool& pool_;
  std::vector<int64_t> routed_counts_;
};

}  // namespace moe

#endif  // MOE_ROUTER_SERVICE_MODEL_RUNNER_H_

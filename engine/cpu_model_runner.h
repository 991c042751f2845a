#ifndef MOE_ENGINE_CPU_MODEL_RUNNER_H_
#define MOE_ENGINE_CPU_MODEL_RUNNER_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/model/model_weights.h"
#include "core/util/thread_pool.h"
#include "engine/expert_dispatch.h"
#include "engine/kv_cache.h"
#include "engine/model_runner.h"

namespace moe {

// The forward pass on the CPU: embeddings, per layer RMSNorm, attention over
// the sequence's KV cache, RMSNorm, top-k gating and the experts through an
// ExpertDispatch, then the final norm and the LM head. Prefill and decode are
// the same call: `tokens` continue the sequence held in the cache. Several
// sequences run as one batch: every matrix (and each layer's expert dispatch)
// sees all their rows at once; only attention is per sequence. With two
// micro-batches, each layer's expert dispatch of one overlaps the other's
// attention (ping-pong).
class CpuModelRunner : public ModelRunner {
 public:
  CpuModelRunner(const ModelWeights& weights, ExpertDispatch& experts,
                 ThreadPool& pool, const ModelRunnerOptions& options = {});

  std::vector<absl::StatusOr<std::vector<float>>> ForwardBatch(
      std::span<const SequenceStep> steps) override;

 private:
  struct MicroBatch;
  // The micro-batches of CheckAndSplit's groups of steps.
  std::vector<MicroBatch> Split(
      std::span<const SequenceStep> steps,
      const std::vector<std::vector<size_t>>& groups) const;
  // One layer up to the experts: attention with its residual, then the
  // normalized rows and their expert assignments for the dispatch.
  void AttendAndRoute(int layer, MicroBatch& batch);
  // Adds the layer's expert results (or records the rows that failed).
  void AddExperts(MicroBatch& batch, PendingExperts& pending);

  const ModelWeights& weights_;
  ExpertDispatch& experts_;
  ThreadPool& pool_;
};

}  // namespace moe

#endif  // MOE_ENGINE_CPU_MODEL_RUNNER_H_

#ifndef MOE_ENGINE_LOCAL_EXPERT_DISPATCH_H_
#define MOE_ENGINE_LOCAL_EXPERT_DISPATCH_H_

#include "core/model/model_weights.h"
#include "core/util/thread_pool.h"
#include "engine/expert_dispatch.h"

namespace moe {

// The embedded default: every expert computed in this process.
class LocalExpertDispatch : public ExpertDispatch {
 public:
  LocalExpertDispatch(const ModelWeights& weights, ThreadPool& pool)
      : weights_(weights), pool_(pool) {}

  // Computes before returning: the experts share this process's cores with
  // everything else, so there is nothing to overlap with.
  std::unique_ptr<PendingExperts> Start(const ExpertBatch& batch,
                                        float* out) override;

 private:
  const ModelWeights& weights_;
  ThreadPool& pool_;
};

}  // namespace moe

#endif  // MOE_ENGINE_LOCAL_EXPERT_DISPATCH_H_

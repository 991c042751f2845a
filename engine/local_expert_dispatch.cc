#include "engine/local_expert_dispatch.h"

namespace moe {

std::unique_ptr<PendingExperts> LocalExpertDispatch::Start(
    const ExpertBatch& batch, float* out) {
  return std::make_unique<FinishedExperts>(ComputeExperts(
      weights_.layers()[batch.layer], batch.layer, batch.x, batch.n,
      weights_.config().hidden_size, batch.assignments, out, pool_));
}

}  // namespace moe

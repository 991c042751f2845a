#include "router_service/local_expert_dispatch.h"

namespace moe {

absl::Status LocalExpertDispatch::Compute(const ExpertBatch& batch, float* out,
                                          std::vector<RowFailure>&) {
  return ComputeExperts(weights_.layers()[batch.layer], batch.layer, batch.x,
                        batch.n, weights_.config().hidden_size,
                        batch.assignments, out, pool_);
}

}  // namespace moe

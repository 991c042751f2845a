#include "router_service/local_expert_dispatch.h"

namespace moe {

absl::Status LocalExpertDispatch::Compute(
    int layer, const float* x, int64_t n,
    std::span<const ExpertAssignment> assignments, float* out) {
  return ComputeExperts(weights_.layers()[layer], layer, x, n,
                        weights_.config().hidden_size, assignments, out, pool_);
}

}  // namespace moe

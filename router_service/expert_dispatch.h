#ifndef MOE_ROUTER_SERVICE_EXPERT_DISPATCH_H_
#define MOE_ROUTER_SERVICE_EXPERT_DISPATCH_H_

#include <cstdint>
#include <span>

#include "absl/status/status.h"
#include "core/expert_ffn.h"

namespace moe {

// Where the engine sends a layer's routed rows: experts in this process, or
// (later) expert workers over gRPC or NCCL. One call per layer and step.
class ExpertDispatch {
 public:
  virtual ~ExpertDispatch() = default;

  // For x[n, hidden] (the post-attention-normalized rows), writes out[n,
  // hidden]: per row, the gate-weighted sum of its experts' outputs.
  virtual absl::Status Compute(int layer, const float* x, int64_t n,
                               std::span<const ExpertAssignment> assignments,
                               float* out) = 0;
};

}  // namespace moe

#endif  // MOE_ROUTER_SERVICE_EXPERT_DISPATCH_H_

#ifndef MOE_ROUTER_SERVICE_EXPERT_DISPATCH_H_
#define MOE_ROUTER_SERVICE_EXPERT_DISPATCH_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/expert_ffn.h"

namespace moe {

// One layer's routed rows of one engine step.
struct ExpertBatch {
  int layer = 0;
  const float* x = nullptr;  // [n, hidden]: the post-attention-normalized rows
  int64_t n = 0;
  std::span<const ExpertAssignment> assignments;
  // Per row, when its result stops being useful (its request's deadline);
  // empty: never. Remote calls carry the latest deadline of their rows.
  std::span<const absl::Time> row_deadlines;
};

// A row whose experts could not be computed, and why.
struct RowFailure {
  int32_t row;
  absl::Status status;
};

// Where the engine sends a layer's routed rows: experts in this process, or
// expert workers over gRPC (or NCCL). One call per layer and step.
class ExpertDispatch {
 public:
  virtual ~ExpertDispatch() = default;

  // Writes out[n, hidden]: per row, the gate-weighted sum of its experts'
  // outputs. An error means the batch as a whole is wrong. When only some
  // rows fail (a worker they needed is down or slow), the call succeeds and
  // lists them in `failures`: the other rows are complete, so the requests
  // that did not need that worker go on.
  virtual absl::Status Compute(const ExpertBatch& batch, float* out,
                               std::vector<RowFailure>& failures) = 0;
};

}  // namespace moe

#endif  // MOE_ROUTER_SERVICE_EXPERT_DISPATCH_H_

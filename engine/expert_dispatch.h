#ifndef MOE_ENGINE_EXPERT_DISPATCH_H_
#define MOE_ENGINE_EXPERT_DISPATCH_H_

#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/kernels/expert_ffn.h"

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

// A layer's expert computation in flight.
class PendingExperts {
 public:
  // Waits for the computation if Wait was not called.
  virtual ~PendingExperts() = default;

  // Blocks until `out` holds the results (see ExpertDispatch::Start). An
  // error means the batch as a whole is wrong. When only some rows fail (a
  // worker they needed is down or slow), the call succeeds and lists them
  // in `failures`: the other rows are complete, so the requests that did
  // not need that worker go on. Called at most once.
  virtual absl::Status Wait(std::vector<RowFailure>& failures) = 0;
};

// Where the engine sends a layer's routed rows: experts in this process, or
// expert workers over gRPC (or NCCL). One call per layer and micro-batch.
class ExpertDispatch {
 public:
  virtual ~ExpertDispatch() = default;

  // Starts computing out[n, hidden]: per row, the gate-weighted sum of its
  // experts' outputs. `batch.x` is read until Wait returns (a remote
  // dispatch sends a failed worker's rows again), its other arrays before
  // Start returns; `out` is written until Wait returns. A remote dispatch returns as soon as the
  // rows are sent, so the caller can work on something else (the other
  // micro-batch) meanwhile; a local one may compute before returning.
  virtual std::unique_ptr<PendingExperts> Start(const ExpertBatch& batch,
                                                float* out) = 0;

  // Start, then Wait.
  absl::Status Compute(const ExpertBatch& batch, float* out,
                       std::vector<RowFailure>& failures) {
    return Start(batch, out)->Wait(failures);
  }
};

// A computation that ended before Start returned.
class FinishedExperts : public PendingExperts {
 public:
  explicit FinishedExperts(absl::Status status) : status_(std::move(status)) {}
  absl::Status Wait(std::vector<RowFailure>&) override { return status_; }

 private:
  absl::Status status_;
};

}  // namespace moe

#endif  // MOE_ENGINE_EXPERT_DISPATCH_H_

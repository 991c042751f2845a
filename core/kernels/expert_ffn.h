#ifndef MOE_CORE_KERNELS_EXPERT_FFN_H_
#define MOE_CORE_KERNELS_EXPERT_FFN_H_

#include <cstdint>
#include <span>

#include "absl/status/status.h"
#include "core/model/model_weights.h"
#include "core/util/thread_pool.h"

namespace moe {

// One (row, expert) pair of a routed batch: row `row` of the input goes to
// `expert` and its output is scaled by `weight` (the renormalized gate
// probability).
struct ExpertAssignment {
  int32_t row;
  int32_t expert;
  float weight;
};

// out[r] = sum over r's assignments of weight * w2 . (silu(w1 . x[r]) * (w3 .
// x[r])), for x[n, hidden] and out[n, hidden]; rows without assignments get 0.
// Rows routed to the same expert are computed together, so each expert's
// weights are read once per call whatever the number of rows. Fails with
// FAILED_PRECONDITION naming the expert when an assignment's expert is not
// loaded, and INVALID_ARGUMENT for out-of-range rows or experts.
absl::Status ComputeExperts(const LayerWeights& layer, int layer_index,
                            const float* x, int64_t n, int64_t hidden,
                            std::span<const ExpertAssignment> assignments,
                            float* out, ThreadPool& pool);

}  // namespace moe

#endif  // MOE_CORE_KERNELS_EXPERT_FFN_H_

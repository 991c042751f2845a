#ifndef MOE_CORE_KERNELS_LINEAR_H_
#define MOE_CORE_KERNELS_LINEAR_H_

#include <cstdint>
#include <span>

#include "core/model/linear_weight.h"
#include "core/util/thread_pool.h"

namespace moe {

// One product y[n, w.rows] = x[n, w.cols] . w^T.
struct LinearJob {
  const LinearWeight* weight;
  const float* x;
  int64_t n;
  float* y;
};

// Runs independent products as one parallel loop over all their output rows,
// so several small matrices (q, k, v; the experts of a layer) cost one
// fork-join instead of one each.
void RunLinear(std::span<const LinearJob> jobs, ThreadPool& pool);

// Single-job convenience.
void Linear(const LinearWeight& weight, const float* x, int64_t n, float* y,
            ThreadPool& pool);

}  // namespace moe

#endif  // MOE_CORE_KERNELS_LINEAR_H_

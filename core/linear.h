#ifndef MOE_CORE_LINEAR_H_
#define MOE_CORE_LINEAR_H_

#include <cstdint>
#include <span>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"

namespace moe {

// A weight matrix [rows, cols], row-major, in the dtype the checkpoint stores
// it in. It is read in place (from the memory-mapped file) and decoded on the
// fly by the kernels, so FP8 weights cost one byte per element in memory and
// in bandwidth.
struct LinearWeight {
  DType dtype = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  const uint8_t* data = nullptr;
  // Dequantization multipliers (real = stored x scale): empty for 1, one
  // value for a per-tensor scale, or `rows` values for per-output-channel.
  std::vector<float> scales;

  float RowScale(int64_t row) const {
    if (scales.empty()) return 1.0f;
    return scales.size() == 1 ? scales[0] : scales[row];
  }
  // Writes row `row`, dequantized, to out[0, cols).
  void DecodeRow(int64_t row, float* out) const;
};

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

#endif  // MOE_CORE_LINEAR_H_

#ifndef MOE_CORE_MODEL_LINEAR_WEIGHT_H_
#define MOE_CORE_MODEL_LINEAR_WEIGHT_H_

#include <cstdint>
#include <vector>

#include "core/model/dtype.h"

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

}  // namespace moe

#endif  // MOE_CORE_MODEL_LINEAR_WEIGHT_H_

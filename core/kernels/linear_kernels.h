#ifndef MOE_CORE_KERNELS_LINEAR_KERNELS_H_
#define MOE_CORE_KERNELS_LINEAR_KERNELS_H_

#include <cstdint>

#include "core/kernels/linear.h"

// Instruction-set specific bodies of RunLinear. Each computes
// y[i, r] = x[i, :] . w[r, :] for rows r in [row_begin, row_end) and all n
// inputs, reading w in its stored dtype.
namespace moe::internal {

void LinearRowsGeneric(const LinearWeight& w, int64_t row_begin,
                       int64_t row_end, const float* x, int64_t n, float* y);

// Needs AVX-512 F/BW/VL, F16C and FMA; see CpuHasAvx512Kernels().
void LinearRowsAvx512(const LinearWeight& w, int64_t row_begin, int64_t row_end,
                      const float* x, int64_t n, float* y);

bool CpuHasAvx512Kernels();

// Needs AVX2, F16C and FMA; see CpuHasAvx2Kernels().
void LinearRowsAvx2(const LinearWeight& w, int64_t row_begin, int64_t row_end,
                    const float* x, int64_t n, float* y);

bool CpuHasAvx2Kernels();

}  // namespace moe::internal

#endif  // MOE_CORE_KERNELS_LINEAR_KERNELS_H_

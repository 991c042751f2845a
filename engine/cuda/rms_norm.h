#ifndef MOE_ENGINE_CUDA_RMS_NORM_H_
#define MOE_ENGINE_CUDA_RMS_NORM_H_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace moe::cuda {

// RMS normalization of n rows:
//   out[i, :] = x[i, :] / sqrt(mean(x[i, :]^2) + eps) * weight
// Device arrays, row-major: x float32 [n, hidden], weight BF16 [hidden], out
// [n, hidden] in float32 (the residual path) or BF16 (the input of a BF16
// GEMM), rounded to nearest even. out must not overlap x. Sums are float32.
//
// Returns cudaErrorInvalidValue for n < 0, hidden < 1, eps < 0 or a null
// pointer (when n > 0); n == 0 launches nothing.
cudaError_t RmsNorm(const float* x, int n, int hidden,
                    const __nv_bfloat16* weight, float eps, float* out,
                    cudaStream_t stream);
cudaError_t RmsNorm(const float* x, int n, int hidden,
                    const __nv_bfloat16* weight, float eps, __nv_bfloat16* out,
                    cudaStream_t stream);

}  // namespace moe::cuda

#endif  // MOE_ENGINE_CUDA_RMS_NORM_H_

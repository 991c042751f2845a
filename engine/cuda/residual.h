#ifndef MOE_ENGINE_CUDA_RESIDUAL_H_
#define MOE_ENGINE_CUDA_RESIDUAL_H_

#include <cuda_runtime.h>

#include <cstdint>

namespace moe::cuda {

// x[i] += y[i] for i in [0, count): a residual connection (the attention
// output, or the experts' weighted sum, added to the hidden rows). Device
// arrays; cudaErrorInvalidValue for count < 0 or null pointers (count > 0).
cudaError_t AddResidual(float* x, const float* y, int64_t count,
                        cudaStream_t stream);

}  // namespace moe::cuda

#endif  // MOE_ENGINE_CUDA_RESIDUAL_H_

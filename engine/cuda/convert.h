#ifndef MOE_ENGINE_CUDA_CONVERT_H_
#define MOE_ENGINE_CUDA_CONVERT_H_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace moe::cuda {

// out[i] = x[i] rounded to BF16 (nearest even), for the float activations
// that feed a BF16 product (the attention output into o_proj).
// cudaErrorInvalidValue for count < 0 or null pointers (count > 0).
cudaError_t ConvertToBf16(const float* x, int64_t count, __nv_bfloat16* out,
                          cudaStream_t stream);

}  // namespace moe::cuda

#endif  // MOE_ENGINE_CUDA_CONVERT_H_

#ifndef MOE_ENGINE_CUDA_ROTARY_H_
#define MOE_ENGINE_CUDA_ROTARY_H_

#include <cuda_runtime.h>

#include <cstdint>

namespace moe::cuda {

// The largest head_dim ApplyRotary takes.
inline constexpr int kMaxRotaryHeadDim = 256;

// Rotary position embedding, NeoX style (rotate half), in place on x float32
// [n, heads, head_dim] (row-major, device): in every head of row i, the pair
// (k, k + head_dim/2) is rotated by the angle positions[i] *
// rope_theta^(-2k/head_dim). positions is int32 [n] on the device. Angles
// are computed in double: float32 loses the phase at long positions. Used
// for queries and keys alike.
//
// Returns cudaErrorInvalidValue for n < 0, heads < 1, an odd head_dim or
// one outside [2, kMaxRotaryHeadDim], rope_theta <= 0 or a null pointer
// (when n > 0); n == 0 launches nothing.
cudaError_t ApplyRotary(float* x, int n, int heads, int head_dim,
                        const int32_t* positions, double rope_theta,
                        cudaStream_t stream);

}  // namespace moe::cuda

#endif  // MOE_ENGINE_CUDA_ROTARY_H_

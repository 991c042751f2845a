#include "core/cuda/cuda_check.h"
#include "engine/cuda/rotary.h"

namespace moe::cuda {
namespace {

constexpr int kThreads = 256;

// One block per row. The head_dim/2 angles of the row's position are shared
// by all its heads: computed once into shared memory, then every thread
// rotates (head, k) pairs, consecutive threads on consecutive k.
__global__ void __launch_bounds__(kThreads)
    RotaryKernel(float* x, int heads, int head_dim, const int32_t* positions,
                 double rope_theta) {
  __shared__ float cos_table[kMaxRotaryHeadDim / 2];
  __shared__ float sin_table[kMaxRotaryHeadDim / 2];
  const int half = head_dim / 2;
  const double position = positions[blockIdx.x];
  for (int k = threadIdx.x; k < half; k += kThreads) {
    const double angle = position * pow(rope_theta, -2.0 * k / head_dim);
    double sine, cosine;
    sincos(angle, &sine, &cosine);
    cos_table[k] = static_cast<float>(cosine);
    sin_table[k] = static_cast<float>(sine);
  }
  __syncthreads();
  float* row = x + int64_t{blockIdx.x} * heads * head_dim;
  for (int i = threadIdx.x; i < heads * half; i += kThreads) {
    const int k = i % half;
    float* head = row + (i / half) * head_dim;
    const float a = head[k];
    const float b = head[k + half];
    head[k] = a * cos_table[k] - b * sin_table[k];
    head[k + half] = b * cos_table[k] + a * sin_table[k];
  }
}

}  // namespace

cudaError_t ApplyRotary(float* x, int n, int heads, int head_dim,
                        const int32_t* positions, double rope_theta,
                        cudaStream_t stream) {
  if (n < 0 || heads < 1 || head_dim < 2 || head_dim % 2 != 0 ||
      head_dim > kMaxRotaryHeadDim || !(rope_theta > 0.0)) {
    return cudaErrorInvalidValue;
  }
  if (n == 0) return cudaSuccess;
  if (x == nullptr || positions == nullptr) return cudaErrorInvalidValue;
  return LaunchError([&] {
    RotaryKernel<<<n, kThreads, 0, stream>>>(x, heads, head_dim, positions,
                                             rope_theta);
  });
}

}  // namespace moe::cuda

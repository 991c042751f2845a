#include <cstdint>

#include "core/cuda/cuda_check.h"
#include "core/cuda/warp_reduce.cuh"
#include "engine/cuda/rms_norm.h"

namespace moe::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

__device__ void Store(float value, float* target) { *target = value; }
__device__ void Store(float value, __nv_bfloat16* target) {
  *target = __float2bfloat16_rn(value);
}

// One block per row: each thread sums the squares of a strided share of the
// row, warps reduce by shuffles, then every thread adds the per-warp sums
// (in the same order, so all threads hold the same inverse RMS).
template <typename Out>
__global__ void __launch_bounds__(kThreads)
    RmsNormKernel(const float* x, int hidden, const __nv_bfloat16* weight,
                  float eps, Out* out) {
  __shared__ float warp_sums[kWarps];
  const int64_t offset = int64_t{blockIdx.x} * hidden;
  const float* row = x + offset;
  float sum = 0.0f;
  for (int c = threadIdx.x; c < hidden; c += kThreads) sum += row[c] * row[c];
  sum = WarpSum(sum);
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = sum;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < kWarps; ++w) total += warp_sums[w];
  const float inv_rms = rsqrtf(total / static_cast<float>(hidden) + eps);
  for (int c = threadIdx.x; c < hidden; c += kThreads) {
    Store(row[c] * inv_rms * __bfloat162float(weight[c]), out + offset + c);
  }
}

template <typename Out>
cudaError_t LaunchRmsNorm(const float* x, int n, int hidden,
                          const __nv_bfloat16* weight, float eps, Out* out,
                          cudaStream_t stream) {
  if (n < 0 || hidden < 1 || !(eps >= 0.0f)) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  if (x == nullptr || weight == nullptr || out == nullptr) {
    return cudaErrorInvalidValue;
  }
  return LaunchError([&] {
    RmsNormKernel<<<n, kThreads, 0, stream>>>(x, hidden, weight, eps, out);
  });
}

}  // namespace

cudaError_t RmsNorm(const float* x, int n, int hidden,
                    const __nv_bfloat16* weight, float eps, float* out,
                    cudaStream_t stream) {
  return LaunchRmsNorm(x, n, hidden, weight, eps, out, stream);
}

cudaError_t RmsNorm(const float* x, int n, int hidden,
                    const __nv_bfloat16* weight, float eps, __nv_bfloat16* out,
                    cudaStream_t stream) {
  return LaunchRmsNorm(x, n, hidden, weight, eps, out, stream);
}

}  // namespace moe::cuda

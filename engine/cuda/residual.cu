#include "core/cuda/cuda_check.h"
#include "engine/cuda/residual.h"

namespace moe::cuda {
namespace {

__global__ void AddResidualKernel(float* x, const float* y, int64_t count) {
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < count;
       i += stride) {
    x[i] += y[i];
  }
}

}  // namespace

cudaError_t AddResidual(float* x, const float* y, int64_t count,
                        cudaStream_t stream) {
  if (count < 0 || (count > 0 && (x == nullptr || y == nullptr)))
    return cudaErrorInvalidValue;
  if (count == 0) return cudaSuccess;
  constexpr int kThreads = 256;
  const int64_t blocks = (count + kThreads - 1) / kThreads;
  const unsigned grid = static_cast<unsigned>(blocks < 65536 ? blocks : 65536);
  return LaunchError(
      [&] { AddResidualKernel<<<grid, kThreads, 0, stream>>>(x, y, count); });
}

}  // namespace moe::cuda

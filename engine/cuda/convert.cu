#include "core/cuda/cuda_check.h"
#include "engine/cuda/convert.h"

namespace moe::cuda {
namespace {

__global__ void ConvertToBf16Kernel(const float* x, int64_t count,
                                    __nv_bfloat16* out) {
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < count;
       i += stride) {
    out[i] = __float2bfloat16(x[i]);
  }
}

}  // namespace

cudaError_t ConvertToBf16(const float* x, int64_t count, __nv_bfloat16* out,
                          cudaStream_t stream) {
  if (count < 0 || (count > 0 && (x == nullptr || out == nullptr)))
    return cudaErrorInvalidValue;
  if (count == 0) return cudaSuccess;
  constexpr int kThreads = 256;
  const int64_t blocks = (count + kThreads - 1) / kThreads;
  const unsigned grid = static_cast<unsigned>(blocks < 65536 ? blocks : 65536);
  return LaunchError([&] {
    ConvertToBf16Kernel<<<grid, kThreads, 0, stream>>>(x, count, out);
  });
}

}  // namespace moe::cuda

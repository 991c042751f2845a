#include "core/cuda/cuda_check.h"
#include "engine/cuda/embedding.h"

namespace moe::cuda {
namespace {

constexpr int kThreads = 256;

// One block per token; consecutive threads copy consecutive columns.
__global__ void __launch_bounds__(kThreads)
    EmbedTokensKernel(const __nv_bfloat16* table, int hidden,
                      const int32_t* ids, float* out) {
  const int64_t row = blockIdx.x;
  const __nv_bfloat16* source = table + int64_t{ids[row]} * hidden;
  float* target = out + row * hidden;
  for (int c = threadIdx.x; c < hidden; c += kThreads) {
    target[c] = __bfloat162float(source[c]);
  }
}

}  // namespace

cudaError_t EmbedTokens(const __nv_bfloat16* table, int hidden,
                        const int32_t* ids, int n, float* out,
                        cudaStream_t stream) {
  if (n < 0 || hidden < 1) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  if (table == nullptr || ids == nullptr || out == nullptr) {
    return cudaErrorInvalidValue;
  }
  return LaunchError([&] {
    EmbedTokensKernel<<<n, kThreads, 0, stream>>>(table, hidden, ids, out);
  });
}

}  // namespace moe::cuda

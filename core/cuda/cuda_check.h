#ifndef MOE_CORE_CUDA_CUDA_CHECK_H_
#define MOE_CORE_CUDA_CUDA_CHECK_H_

#include <cuda_runtime.h>

#include <string>
#include <utility>

namespace moe::cuda {

// "what: cudaErrorName (message)" for an error, "" for success: the CUDA
// code reports failures as strings so that it needs no other library.
std::string CudaErrorText(cudaError_t error, const char* what);

// Runs `launch` (a kernel launch) and returns its error. A kernel launch
// reports failure only through the thread's pending "last error", which any
// failed runtime call sets and only cudaGetLastError clears
// (cudaErrorNotReady from cudaEventQuery and a failed cudaMallocAsync
// included): the pending error is cleared first, so that one left by an
// earlier, unrelated call is not blamed on this launch.
template <typename Launch>
cudaError_t LaunchError(Launch&& launch) {
  (void)cudaGetLastError();
  std::forward<Launch>(launch)();
  return cudaGetLastError();
}

}  // namespace moe::cuda

// Returns the error of a CUDA runtime call from a function returning
// cudaError_t.
#define MOE_CUDA_RETURN_IF_ERROR(expr)                          \
  do {                                                          \
    const cudaError_t moe_cuda_error_ = (expr);                 \
    if (moe_cuda_error_ != cudaSuccess) return moe_cuda_error_; \
  } while (0)

#endif  // MOE_CORE_CUDA_CUDA_CHECK_H_

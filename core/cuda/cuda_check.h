#ifndef MOE_CORE_CUDA_CUDA_CHECK_H_
#define MOE_CORE_CUDA_CUDA_CHECK_H_

#include <cuda_runtime.h>

#include <string>

namespace moe::cuda {

// "what: cudaErrorName (message)" for an error, "" for success: the CUDA
// code reports failures as strings so that it needs no other library.
std::string CudaErrorText(cudaError_t error, const char* what);

}  // namespace moe::cuda

// Returns the error of a CUDA runtime call from a function returning
// cudaError_t.
#define MOE_CUDA_RETURN_IF_ERROR(expr)                          \
  do {                                                          \
    const cudaError_t moe_cuda_error_ = (expr);                 \
    if (moe_cuda_error_ != cudaSuccess) return moe_cuda_error_; \
  } while (0)

#endif  // MOE_CORE_CUDA_CUDA_CHECK_H_

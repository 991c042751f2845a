#include "core/cuda/cuda_check.h"

namespace moe::cuda {

std::string CudaErrorText(cudaError_t error, const char* what) {
  if (error == cudaSuccess) return "";
  return std::string(what) + ": " + cudaGetErrorName(error) + " (" +
         cudaGetErrorString(error) + ")";
}

}  // namespace moe::cuda

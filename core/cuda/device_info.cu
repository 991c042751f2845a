#include <cuda_runtime.h>

#include "core/cuda/device_info.h"

namespace moe::cuda {

int DeviceCount() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device / no driver" error
    return 0;
  }
  return count;
}

bool QueryDeviceMemory(int device, DeviceMemory* memory, std::string* error) {
  cudaError_t status = cudaSetDevice(device);
  if (status == cudaSuccess)
    status = cudaMemGetInfo(&memory->free_bytes, &memory->total_bytes);
  if (status != cudaSuccess) {
    *error = cudaGetErrorString(status);
    return false;
  }
  return true;
}

}  // namespace moe::cuda

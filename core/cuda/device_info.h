#ifndef MOE_CORE_CUDA_DEVICE_INFO_H_
#define MOE_CORE_CUDA_DEVICE_INFO_H_

#include <cstddef>
#include <string>

namespace moe::cuda {

// Number of usable CUDA devices: 0 on a machine without a GPU or driver
// (cudaErrorNoDevice, cudaErrorInsufficientDriver), never an error.
int DeviceCount();

struct DeviceMemory {
  size_t free_bytes = 0;
  size_t total_bytes = 0;
};

// Free and total memory of `device`; false (with `error` set) on failure.
bool QueryDeviceMemory(int device, DeviceMemory* memory, std::string* error);

}  // namespace moe::cuda

#endif  // MOE_CORE_CUDA_DEVICE_INFO_H_

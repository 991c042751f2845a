#ifndef MOE_CORE_CUDA_DEVICE_BUFFER_H_
#define MOE_CORE_CUDA_DEVICE_BUFFER_H_

#include <cuda_runtime.h>

#include <cstddef>
#include <utility>

namespace moe::cuda {

// Device memory that grows on demand and is freed on destruction; its
// contents do not survive growth (scratch space for one computation).
// Allocated and freed in the order of the legacy default stream
// (cudaMallocAsync / cudaFreeAsync), never with cudaFree, which waits for
// the whole device: an NCCL kernel waiting for its peer on another stream
// would then hold it up. Callers grow a buffer only while no
// other stream uses it.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)),
        bytes_(std::exchange(other.bytes_, 0)) {}
  ~DeviceBuffer() {
    if (data_ != nullptr) cudaFreeAsync(data_, nullptr);
  }

  // Makes room for at least `bytes`.
  cudaError_t Reserve(size_t bytes) {
    if (bytes <= bytes_) return cudaSuccess;
    if (data_ != nullptr) cudaFreeAsync(data_, nullptr);
    data_ = nullptr;
    bytes_ = 0;
    cudaError_t status = cudaMallocAsync(&data_, bytes, nullptr);
    // Other streams may use the memory once the allocation has happened.
    if (status == cudaSuccess) status = cudaStreamSynchronize(nullptr);
    if (status == cudaSuccess) bytes_ = bytes;
    return status;
  }

  template <typename T = void>
  T* get() const {
    return static_cast<T*>(data_);
  }
  size_t bytes() const { return bytes_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace moe::cuda

#endif  // MOE_CORE_CUDA_DEVICE_BUFFER_H_

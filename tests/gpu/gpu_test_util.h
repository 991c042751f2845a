#ifndef MOE_TESTS_GPU_GPU_TEST_UTIL_H_
#define MOE_TESTS_GPU_GPU_TEST_UTIL_H_

// Helpers of the GPU tests: device arrays, random inputs, the relative error
// against a float64 reference. Only CUDA and GoogleTest, so these tests build
// on a GPU machine without the rest of the project's libraries.

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "core/cuda/cuda_check.h"
#include "core/cuda/device_info.h"

// Skips the test, visibly, where there is no GPU to run it on.
#define MOE_SKIP_WITHOUT_GPU()                                    \
  do {                                                            \
    if (::moe::cuda::DeviceCount() == 0)                          \
      GTEST_SKIP() << "no CUDA device or driver on this machine"; \
  } while (0)

// Fails the test on a CUDA error, with its name.
#define MOE_ASSERT_CUDA(expr)                                  \
  do {                                                         \
    const cudaError_t moe_cuda_error_ = (expr);                \
    ASSERT_EQ(cudaSuccess, moe_cuda_error_)                    \
        << ::moe::cuda::CudaErrorText(moe_cuda_error_, #expr); \
  } while (0)

namespace moe::cuda::testing {

// A device array of T, freed on destruction. New arrays are poisoned (every
// byte 0xFF: NaN for floats) so that an element a kernel fails to write
// shows in the comparison.
template <typename T>
class DeviceArray {
 public:
  explicit DeviceArray(size_t size) : size_(size) {
    if (cudaMalloc(&data_, bytes()) != cudaSuccess ||
        cudaMemset(data_, 0xFF, bytes()) != cudaSuccess) {
      ADD_FAILURE() << "cannot allocate " << bytes() << " device bytes";
      data_ = nullptr;
    }
  }
  explicit DeviceArray(const std::vector<T>& host) : DeviceArray(host.size()) {
    if (data_ != nullptr) {
      EXPECT_EQ(cudaSuccess, cudaMemcpy(data_, host.data(), bytes(),
                                        cudaMemcpyHostToDevice));
    }
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  ~DeviceArray() { cudaFree(data_); }

  T* get() const { return data_; }
  size_t size() const { return size_; }
  size_t bytes() const { return size_ * sizeof(T); }

  std::vector<T> ToHost() const {
    std::vector<T> host(size_);
    EXPECT_EQ(cudaSuccess, cudaDeviceSynchronize());
    EXPECT_EQ(cudaSuccess,
              cudaMemcpy(host.data(), data_, bytes(), cudaMemcpyDeviceToHost));
    return host;
  }

 private:
  size_t size_;
  T* data_ = nullptr;
};

// Normal(0, stddev) floats; a fresh seed per check draws fresh inputs.
inline std::vector<float> RandomFloats(size_t count, uint32_t seed,
                                       float stddev = 1.0f) {
  std::mt19937 engine(seed);
  std::normal_distribution<float> normal(0.0f, stddev);
  std::vector<float> values(count);
  for (float& value : values) value = normal(engine);
  return values;
}

inline std::vector<__nv_bfloat16> ToBf16(const std::vector<float>& values) {
  std::vector<__nv_bfloat16> out(values.size());
  for (size_t i = 0; i < values.size(); ++i)
    out[i] = __float2bfloat16(values[i]);
  return out;
}

// The values a BF16 array holds, as floats (what the reference must use).
inline std::vector<float> FromBf16(const std::vector<__nv_bfloat16>& values) {
  std::vector<float> out(values.size());
  for (size_t i = 0; i < values.size(); ++i)
    out[i] = __bfloat162float(values[i]);
  return out;
}

// ||out - ref|| / ||ref||; infinite when out holds a NaN or an infinity.
inline double RelativeError(const std::vector<float>& out,
                            const std::vector<double>& ref) {
  EXPECT_EQ(out.size(), ref.size());
  double diff = 0, norm = 0;
  for (size_t i = 0; i < out.size() && i < ref.size(); ++i) {
    if (!std::isfinite(out[i])) return INFINITY;
    diff += (out[i] - ref[i]) * (out[i] - ref[i]);
    norm += ref[i] * ref[i];
  }
  return std::sqrt(diff / (norm > 0 ? norm : 1));
}

}  // namespace moe::cuda::testing

#endif  // MOE_TESTS_GPU_GPU_TEST_UTIL_H_

#include <gtest/gtest.h>

#include "core/cuda/device_info.h"

namespace moe::cuda {
namespace {

TEST(CudaDeviceTest, ReportsMemoryOfEveryDevice) {
  const int count = DeviceCount();
  ASSERT_GE(count, 0);
  if (count == 0) GTEST_SKIP() << "no CUDA device or driver on this machine";
  for (int device = 0; device < count; ++device) {
    DeviceMemory memory;
    std::string error;
    ASSERT_TRUE(QueryDeviceMemory(device, &memory, &error)) << error;
    EXPECT_GT(memory.total_bytes, 0u);
    EXPECT_LE(memory.free_bytes, memory.total_bytes);
  }
}

}  // namespace
}  // namespace moe::cuda

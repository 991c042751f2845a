#include "engine/cuda/convert.h"

#include <gtest/gtest.h>

#include <cstring>

#include "tests/gpu/gpu_test_util.h"

namespace moe::cuda {
namespace {

using testing::DeviceArray;
using testing::RandomFloats;

// BF16 bits of x, rounded to nearest even, from the definition: the top 16
// bits of the float after adding half of the dropped part's unit (plus the
// kept part's lowest bit, for ties to even).
uint16_t ReferenceBf16Bits(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  bits += 0x7FFF + ((bits >> 16) & 1);
  return static_cast<uint16_t>(bits >> 16);
}

TEST(ConvertTest, RoundsToNearestEven) {
  MOE_SKIP_WITHOUT_GPU();
  for (int64_t count : {1, 255, 70001}) {
    std::vector<float> x = RandomFloats(count, count, 100.0f);
    x[0] = 1.00390625f;  // exactly between two BF16 values: rounds to even
    DeviceArray<float> in(x);
    DeviceArray<__nv_bfloat16> out(count);
    MOE_ASSERT_CUDA(ConvertToBf16(in.get(), count, out.get(), nullptr));
    const std::vector<__nv_bfloat16> got = out.ToHost();
    for (int64_t i = 0; i < count; ++i) {
      uint16_t bits;
      std::memcpy(&bits, &got[i], 2);
      ASSERT_EQ(bits, ReferenceBf16Bits(x[i])) << "element " << i;
    }
  }
}

TEST(ConvertTest, RejectsBadArguments) {
  MOE_SKIP_WITHOUT_GPU();
  DeviceArray<__nv_bfloat16> out(4);
  EXPECT_EQ(ConvertToBf16(nullptr, 4, out.get(), nullptr),
            cudaErrorInvalidValue);
  EXPECT_EQ(ConvertToBf16(nullptr, -1, out.get(), nullptr),
            cudaErrorInvalidValue);
  EXPECT_EQ(ConvertToBf16(nullptr, 0, nullptr, nullptr), cudaSuccess);
}

}  // namespace
}  // namespace moe::cuda

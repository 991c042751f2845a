#include "engine/cuda/rotary.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "tests/gpu/gpu_test_util.h"

namespace moe::cuda {
namespace {

using ::moe::cuda::testing::DeviceArray;
using ::moe::cuda::testing::RandomFloats;
using ::moe::cuda::testing::RelativeError;

// Float32 in and out, angles in double: ~1e-7 relative.
constexpr double kTolerance = 1e-5;

struct Shape {
  int n;
  int heads;
  int head_dim;
  double theta;
  int max_position;
};

// NeoX rotary embedding from its definition: in every head the pair
// (x[k], x[k + d/2]) is rotated by position * theta^(-2k/d).
std::vector<double> Reference(const std::vector<float>& x,
                              const std::vector<int32_t>& positions,
                              const Shape& shape) {
  std::vector<double> out(x.begin(), x.end());
  const int half = shape.head_dim / 2;
  for (int i = 0; i < shape.n; ++i) {
    for (int h = 0; h < shape.heads; ++h) {
      const size_t base =
          (static_cast<size_t>(i) * shape.heads + h) * shape.head_dim;
      for (int k = 0; k < half; ++k) {
        const double angle =
            positions[i] * std::pow(shape.theta, -2.0 * k / shape.head_dim);
        const double a = x[base + k];
        const double b = x[base + k + half];
        out[base + k] = a * std::cos(angle) - b * std::sin(angle);
        out[base + k + half] = b * std::cos(angle) + a * std::sin(angle);
      }
    }
  }
  return out;
}

TEST(RotaryTest, MatchesFloat64Reference) {
  MOE_SKIP_WITHOUT_GPU();
  // Skywork-MoE's 36 heads of 128 (theta 1e4), a GQA-sized 8 x 64 at long
  // positions (theta 1e6), the largest and smallest head_dim.
  const Shape shapes[] = {{17, 36, 128, 1e4, 4096},
                          {3, 8, 64, 1e6, 131072},
                          {1, 1, 256, 1e4, 1000},
                          {5, 3, 2, 1e4, 50}};
  uint32_t seed = 1;
  for (const Shape& shape : shapes) {
    SCOPED_TRACE(::testing::Message()
                 << "n " << shape.n << " heads " << shape.heads << " head_dim "
                 << shape.head_dim);
    const std::vector<float> x = RandomFloats(
        static_cast<size_t>(shape.n) * shape.heads * shape.head_dim, seed++);
    std::mt19937 engine(seed++);
    std::uniform_int_distribution<int32_t> position(0, shape.max_position - 1);
    std::vector<int32_t> positions(shape.n);
    for (int32_t& p : positions) p = position(engine);
    positions[0] = 0;  // the identity rotation
    positions.back() = shape.max_position - 1;
    DeviceArray<float> device_x(x);
    DeviceArray<int32_t> device_positions(positions);
    MOE_ASSERT_CUDA(ApplyRotary(device_x.get(), shape.n, shape.heads,
                                shape.head_dim, device_positions.get(),
                                shape.theta, nullptr));
    EXPECT_LT(RelativeError(device_x.ToHost(), Reference(x, positions, shape)),
              kTolerance);
  }
}

TEST(RotaryTest, RejectsBadArguments) {
  MOE_SKIP_WITHOUT_GPU();
  DeviceArray<float> x(512);
  DeviceArray<int32_t> positions(1);
  const int32_t* p = positions.get();
  EXPECT_EQ(cudaErrorInvalidValue,
            ApplyRotary(x.get(), -1, 1, 64, p, 1e4, nullptr));
  EXPECT_EQ(cudaErrorInvalidValue,
            ApplyRotary(x.get(), 1, 0, 64, p, 1e4, nullptr));
  EXPECT_EQ(cudaErrorInvalidValue,
            ApplyRotary(x.get(), 1, 1, 63, p, 1e4, nullptr));
  EXPECT_EQ(cudaErrorInvalidValue,
            ApplyRotary(x.get(), 1, 1, 0, p, 1e4, nullptr));
  EXPECT_EQ(cudaErrorInvalidValue,
            ApplyRotary(x.get(), 1, 1, 258, p, 1e4, nullptr));
  EXPECT_EQ(cudaErrorInvalidValue,
            ApplyRotary(x.get(), 1, 1, 64, p, 0.0, nullptr));
  EXPECT_EQ(cudaErrorInvalidValue,
            ApplyRotary(x.get(), 1, 1, 64, nullptr, 1e4, nullptr));
  EXPECT_EQ(cudaSuccess, ApplyRotary(x.get(), 0, 1, 64, p, 1e4, nullptr));
}

}  // namespace
}  // namespace moe::cuda

#include "engine/cuda/rms_norm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "tests/gpu/gpu_test_util.h"

namespace moe::cuda {
namespace {

using ::moe::cuda::testing::DeviceArray;
using ::moe::cuda::testing::FromBf16;
using ::moe::cuda::testing::RandomFloats;
using ::moe::cuda::testing::RelativeError;
using ::moe::cuda::testing::ToBf16;

// Float32 output: float32 sums over up to 4608 squares, ~1e-6 relative.
constexpr double kFloatTolerance = 1e-5;
// BF16 output: rounding to nearest BF16 moves each element by at most 2^-8
// of itself (8 significant bits), so the relative error of the whole output
// stays below 2^-8 = 3.9e-3 plus the float32 error.
constexpr double kBf16Tolerance = 4e-3;

struct Shape {
  int n;
  int hidden;
  float eps;
};

// out[i, :] = x[i, :] / sqrt(mean(x[i, :]^2) + eps) * weight, in double on
// the weights the kernel reads (BF16-rounded).
std::vector<double> Reference(const std::vector<float>& x,
                              const std::vector<float>& weight,
                              const Shape& shape) {
  std::vector<double> out(x.size());
  for (int i = 0; i < shape.n; ++i) {
    const float* row = x.data() + static_cast<size_t>(i) * shape.hidden;
    double sum_squares = 0.0;
    for (int c = 0; c < shape.hidden; ++c) {
      sum_squares += static_cast<double>(row[c]) * row[c];
    }
    const double inv_rms =
        1.0 / std::sqrt(sum_squares / shape.hidden + shape.eps);
    for (int c = 0; c < shape.hidden; ++c) {
      out[static_cast<size_t>(i) * shape.hidden + c] =
          row[c] * inv_rms * weight[c];
    }
  }
  return out;
}

// Skywork-MoE's hidden size, odd sizes, one row and many.
const Shape kShapes[] = {{1, 4608, 1e-6f},
                         {17, 4608, 1e-6f},
                         {3, 100, 1e-5f},
                         {17, 1, 1e-5f},
                         {5, 4097, 1e-6f}};

std::vector<float> AsFloats(std::vector<float> values) { return values; }
std::vector<float> AsFloats(const std::vector<__nv_bfloat16>& values) {
  return FromBf16(values);
}

// RmsNorm with output elements of type Out on every shape, fresh inputs from
// `seed` on.
template <typename Out>
void ExpectMatchesReference(uint32_t seed, double tolerance) {
  for (const Shape& shape : kShapes) {
    SCOPED_TRACE(::testing::Message()
                 << "n " << shape.n << " hidden " << shape.hidden);
    const std::vector<float> x =
        RandomFloats(static_cast<size_t>(shape.n) * shape.hidden, seed++, 3.0f);
    std::vector<float> weight = RandomFloats(shape.hidden, seed++, 0.2f);
    for (float& w : weight) w += 1.0f;
    const std::vector<__nv_bfloat16> weight_bf16 = ToBf16(weight);
    DeviceArray<float> device_x(x);
    DeviceArray<__nv_bfloat16> device_weight(weight_bf16);
    DeviceArray<Out> out(x.size());
    MOE_ASSERT_CUDA(RmsNorm(device_x.get(), shape.n, shape.hidden,
                            device_weight.get(), shape.eps, out.get(),
                            nullptr));
    EXPECT_LT(RelativeError(AsFloats(out.ToHost()),
                            Reference(x, FromBf16(weight_bf16), shape)),
              tolerance);
  }
}

TEST(RmsNormTest, Float32OutputMatchesFloat64Reference) {
  MOE_SKIP_WITHOUT_GPU();
  ExpectMatchesReference<float>(1, kFloatTolerance);
}

TEST(RmsNormTest, Bf16OutputMatchesFloat64Reference) {
  MOE_SKIP_WITHOUT_GPU();
  ExpectMatchesReference<__nv_bfloat16>(100, kBf16Tolerance);
}

TEST(RmsNormTest, RejectsBadArguments) {
  MOE_SKIP_WITHOUT_GPU();
  DeviceArray<float> x(8);
  DeviceArray<__nv_bfloat16> weight(8);
  DeviceArray<float> out(8);
  DeviceArray<__nv_bfloat16> out_bf16(8);
  EXPECT_EQ(cudaErrorInvalidValue,
            RmsNorm(x.get(), -1, 8, weight.get(), 1e-6f, out.get(), nullptr));
  EXPECT_EQ(cudaErrorInvalidValue,
            RmsNorm(x.get(), 1, 0, weight.get(), 1e-6f, out.get(), nullptr));
  EXPECT_EQ(cudaErrorInvalidValue,
            RmsNorm(x.get(), 1, 8, weight.get(), -1.0f, out.get(), nullptr));
  EXPECT_EQ(cudaErrorInvalidValue,
            RmsNorm(x.get(), 1, 8, nullptr, 1e-6f, out.get(), nullptr));
  EXPECT_EQ(cudaErrorInvalidValue, RmsNorm(x.get(), 1, 0, weight.get(), 1e-6f,
                                           out_bf16.get(), nullptr));
  EXPECT_EQ(cudaErrorInvalidValue,
            RmsNorm(x.get(), 1, 8, weight.get(), 1e-6f,
                    static_cast<__nv_bfloat16*>(nullptr), nullptr));
  // An empty batch is no work, not an error.
  EXPECT_EQ(cudaSuccess,
            RmsNorm(x.get(), 0, 8, weight.get(), 1e-6f, out.get(), nullptr));
}

}  // namespace
}  // namespace moe::cuda

// The GPU expert FFN against a float64 reference written from the math:
// out[r] = sum over r's routes of weight * w2 . (silu(w1 . x) * (w3 . x)).
#include "expert_worker/cuda/gpu_experts.h"

#include <cuda_fp8.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "tests/gpu/gpu_test_util.h"

namespace moe::cuda {
namespace {

using testing::RandomFloats;
using testing::RelativeError;

// An FP8 checkpoint tensor: E4M3 bytes and a scale per row, from random
// values; `real` holds what it means (byte value x scale).
struct Fp8Tensor {
  int64_t rows, cols;
  std::vector<__nv_fp8_e4m3> data;
  std::vector<float> scales;
  std::vector<double> real;

  Fp8Tensor(int64_t rows, int64_t cols, uint32_t seed)
      : rows(rows),
        cols(cols),
        data(rows * cols),
        scales(rows),
        real(rows * cols) {
    const std::vector<float> values =
        RandomFloats(rows * cols, seed, 1.0f / std::sqrt(float(cols)));
    for (int64_t r = 0; r < rows; ++r) {
      float amax = 0;
      for (int64_t c = 0; c < cols; ++c)
        amax = std::max(amax, std::fabs(values[r * cols + c]));
      scales[r] = amax / 448.0f;
      for (int64_t c = 0; c < cols; ++c) {
        data[r * cols + c] = __nv_fp8_e4m3(values[r * cols + c] / scales[r]);
        real[r * cols + c] =
            double(static_cast<float>(data[r * cols + c])) * scales[r];
      }
    }
  }

  HostWeight View() const {
    return {HostFormat::kFp8E4M3, rows, cols, data.data(), scales.data()};
  }
};

struct Expert {
  Fp8Tensor w1, w3, w2;
  Expert(int64_t hidden, int64_t intermediate, uint32_t seed)
      : w1(intermediate, hidden, seed),
        w3(intermediate, hidden, seed + 1),
        w2(hidden, intermediate, seed + 2) {}
  HostExpert View() const { return {w1.View(), w3.View(), w2.View()}; }
};

// How the reference treats activations before each product.
enum class Activations {
  kExact,
  // Rounded to E4M3 per row with scale max|row| / 448, as the FP8 path
  // documents: isolates the products' arithmetic from quantization.
  kFp8PerToken,
};

std::vector<double> RoundRow(const std::vector<double>& row,
                             Activations activations) {
  if (activations == Activations::kExact) return row;
  double amax = 0;
  for (double v : row) amax = std::max(amax, std::fabs(v));
  const float scale = amax > 0 ? float(amax / 448.0) : 1.0f;
  std::vector<double> out(row.size());
  for (size_t i = 0; i < row.size(); ++i) {
    const __nv_fp8_e4m3 q(float(row[i] / scale));
    out[i] = double(static_cast<float>(q)) * scale;
  }
  return out;
}

std::vector<double> MatVec(const Fp8Tensor& w, const std::vector<double>& x) {
  std::vector<double> y(w.rows, 0.0);
  for (int64_t r = 0; r < w.rows; ++r)
    for (int64_t c = 0; c < w.cols; ++c) y[r] += w.real[r * w.cols + c] * x[c];
  return y;
}

std::vector<double> Reference(const std::vector<Expert>& experts,
                              const std::vector<float>& x, int64_t n,
                              int64_t hidden,
                              const std::vector<ExpertRoute>& routes,
                              Activations activations) {
  std::vector<double> out(n * hidden, 0.0);
  for (const ExpertRoute& route : routes) {
    const Expert& e = experts[route.expert];
    const std::vector<double> row =
        RoundRow(std::vector<double>(x.begin() + route.row * hidden,
                                     x.begin() + (route.row + 1) * hidden),
                 activations);
    const std::vector<double> a = MatVec(e.w1, row), b = MatVec(e.w3, row);
    std::vector<double> h(a.size());
    for (size_t i = 0; i < h.size(); ++i)
      h[i] = a[i] / (1.0 + std::exp(-a[i])) * b[i];
    const std::vector<double> y = MatVec(e.w2, RoundRow(h, activations));
    for (int64_t c = 0; c < hidden; ++c)
      out[route.row * hidden + c] += route.weight * y[c];
  }
  return out;
}

// Rows that get routes: all but the last, which checks that a row without
// routes reads zeros (a single row is routed).
int64_t RoutedRows(int64_t n) { return n > 1 ? n - 1 : n; }

// Top-2 of `experts` for every routed row, with weights summing to 1.
std::vector<ExpertRoute> RandomRoutes(int64_t n, int experts, uint32_t seed) {
  std::mt19937 engine(seed);
  std::vector<ExpertRoute> routes;
  for (int64_t r = 0; r < RoutedRows(n); ++r) {
    const int first = int(engine() % experts);
    const int second = (first + 1 + int(engine() % (experts - 1))) % experts;
    const float w = 0.5f + 0.4f * float(engine() % 1000) / 1000.0f;
    routes.push_back({int32_t(r), first, w});
    routes.push_back({int32_t(r), second, 1.0f - w});
  }
  return routes;
}

struct Case {
  int64_t hidden, intermediate, n;
  int experts;
};

void RunCase(const Case& c, bool allow_fp8, uint32_t seed) {
  std::string error;
  auto gpu =
      GpuExperts::Create({0, c.hidden, c.intermediate, allow_fp8}, &error);
  ASSERT_NE(gpu, nullptr) << error;
  std::vector<Expert> experts;
  for (int e = 0; e < c.experts; ++e)
    experts.emplace_back(c.hidden, c.intermediate, seed + 10 * e);
  for (int e = 0; e < c.experts; ++e)
    ASSERT_TRUE(gpu->Add(3, e, experts[e].View(), &error)) << error;
  EXPECT_EQ(gpu->BytesHeld(), c.experts * gpu->ExpertBytes());

  const std::vector<float> x = RandomFloats(c.n * c.hidden, seed + 999);
  const std::vector<ExpertRoute> routes = RandomRoutes(c.n, c.experts, seed);
  std::vector<float> out(c.n * c.hidden, NAN);  // poisoned
  ASSERT_TRUE(gpu->Compute(3, x.data(), c.n, routes, out.data(), &error))
      << error;
  const std::string shape = "hidden " + std::to_string(c.hidden) +
                            " intermediate " + std::to_string(c.intermediate) +
                            " n " + std::to_string(c.n);
  if (gpu->fp8()) {
    // Against FP8-rounded activations only float accumulation order and a
    // rare rounding tie differ; against the exact math, per-token E4M3
    // rounding of x and h (3 mantissa bits) costs a few percent.
    EXPECT_LT(RelativeError(out, Reference(experts, x, c.n, c.hidden, routes,
                                           Activations::kFp8PerToken)),
              5e-3)
        << shape;
    EXPECT_LT(RelativeError(out, Reference(experts, x, c.n, c.hidden, routes,
                                           Activations::kExact)),
              8e-2)
        << shape;
  } else {
    // BF16 weights and activations (8 mantissa bits).
    EXPECT_LT(RelativeError(out, Reference(experts, x, c.n, c.hidden, routes,
                                           Activations::kExact)),
              1e-2)
        << shape;
  }
  for (int64_t row = RoutedRows(c.n); row < c.n; ++row)
    for (int64_t col = 0; col < c.hidden; ++col)
      ASSERT_EQ(out[row * c.hidden + col], 0.0f) << shape;
}

TEST(GpuExpertsTest, Fp8MatchesReferenceAtSmallShapes) {
  MOE_SKIP_WITHOUT_GPU();
  uint32_t seed = 1;
  for (const Case& c : {Case{64, 128, 1, 4}, Case{64, 128, 3, 4},
                        Case{128, 384, 17, 8}, Case{256, 512, 64, 16}}) {
    RunCase(c, /*allow_fp8=*/true, seed += 100);
  }
}

TEST(GpuExpertsTest, Bf16FallbackMatchesReference) {
  MOE_SKIP_WITHOUT_GPU();
  uint32_t seed = 7;
  for (const Case& c : {Case{64, 128, 3, 4}, Case{136, 200, 17, 8}}) {
    RunCase(c, /*allow_fp8=*/false, seed += 100);
  }
}

// Skywork-MoE's layer: hidden 4608, intermediate 12288 (two experts, a few
// rows: the float64 reference is the slow part).
TEST(GpuExpertsTest, Fp8MatchesReferenceAtSkyworkShape) {
  MOE_SKIP_WITHOUT_GPU();
  RunCase({4608, 12288, 5, 2}, /*allow_fp8=*/true, 4242);
}

TEST(GpuExpertsTest, RejectsMissingExpertsRowsAndShapes) {
  MOE_SKIP_WITHOUT_GPU();
  std::string error;
  auto gpu = GpuExperts::Create({0, 64, 128, true}, &error);
  ASSERT_NE(gpu, nullptr) << error;
  const Expert expert(64, 128, 5);
  ASSERT_TRUE(gpu->Add(0, 1, expert.View(), &error)) << error;
  const std::vector<float> x = RandomFloats(2 * 64, 6);
  std::vector<float> out(2 * 64);

  const std::vector<ExpertRoute> missing = {{0, 1, 0.5f}, {0, 5, 0.5f}};
  EXPECT_FALSE(gpu->Compute(0, x.data(), 2, missing, out.data(), &error));
  EXPECT_NE(error.find("layer 0 expert 5"), std::string::npos) << error;

  const std::vector<ExpertRoute> bad_row = {{2, 1, 1.0f}};
  EXPECT_FALSE(gpu->Compute(0, x.data(), 2, bad_row, out.data(), &error));
  EXPECT_NE(error.find("row 2"), std::string::npos) << error;

  const Expert wrong(64, 64, 8);  // intermediate 64, not 128
  EXPECT_FALSE(gpu->Add(0, 2, wrong.View(), &error));
  EXPECT_NE(error.find("w1: expected [128, 64]"), std::string::npos) << error;
  EXPECT_FALSE(gpu->Holds(0, 2));

  gpu->Remove(0, 1);
  EXPECT_FALSE(gpu->Holds(0, 1));
  EXPECT_EQ(gpu->BytesHeld(), 0);
}

}  // namespace
}  // namespace moe::cuda

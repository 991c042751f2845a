// moe::Linear and moe::RunLinear against a float64 reference that decodes the
// stored values with its own code.
#include "core/kernels/linear.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "core/model/dtype.h"
#include "core/model/float_formats.h"
#include "core/util/thread_pool.h"
#include "gtest/gtest.h"
#include "tests/support/reference_model.h"

namespace moe {
namespace {

// Stored element `index` of `bytes`, decoded by the reference model's
// decoder (no scale).
double StoredValue(DType dtype, const std::vector<uint8_t>& bytes,
                   int64_t index) {
  return testing::DecodeStoredValue(dtype,
                                    bytes.data() + index * DTypeSize(dtype));
}

// ------------------------------------------------ test matrices

enum class Kind { kF32, kF16, kBF16, kFp8PerTensor, kFp8PerRow };

std::string KindName(Kind kind) {
  switch (kind) {
    case Kind::kF32:
      return "F32";
    case Kind::kF16:
      return "F16";
    case Kind::kBF16:
      return "BF16";
    case Kind::kFp8PerTensor:
      return "Fp8PerTensor";
    case Kind::kFp8PerRow:
      return "Fp8PerRow";
  }
  return "?";
}

// A weight with its own storage.
struct TestMatrix {
  std::vector<uint8_t> bytes;
  LinearWeight weight;
};

TestMatrix MakeMatrix(Kind kind, int64_t rows, int64_t cols, uint64_t seed) {
  std::mt19937_64 generator(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::uniform_real_distribution<float> scale(0.001f, 2.0f);
  TestMatrix m;
  LinearWeight& w = m.weight;
  w.rows = rows;
  w.cols = cols;
  const int64_t count = rows * cols;
  switch (kind) {
    case Kind::kF32:
      w.dtype = DType::kF32;
      m.bytes.resize(count * 4);
      for (int64_t i = 0; i < count; ++i) {
        const float v = uniform(generator);
        std::memcpy(&m.bytes[4 * i], &v, 4);
      }
      break;
    case Kind::kF16:
    case Kind::kBF16:
      w.dtype = kind == Kind::kF16 ? DType::kF16 : DType::kBF16;
      m.bytes.resize(count * 2);
      for (int64_t i = 0; i < count; ++i) {
        // Include F16 subnormals now and then.
        const float v = uniform(generator) * (i % 11 == 0 ? 1e-5f : 1.0f);
        const uint16_t bits =
            kind == Kind::kF16 ? FloatToF16(v) : FloatToBf16(v);
        std::memcpy(&m.bytes[2 * i], &bits, 2);
      }
      break;
    case Kind::kFp8PerTensor:
    case Kind::kFp8PerRow: {
      w.dtype = DType::kF8E4M3;
      m.bytes.resize(count);
      // Every code but the two NaNs, subnormals and +-448 included.
      std::uniform_int_distribution<int> byte(0, 255);
      for (int64_t i = 0; i < count; ++i) {
        int code;
        do code = byte(generator);
        while ((code & 0x7F) == 0x7F);
        m.bytes[i] = static_cast<uint8_t>(code);
      }
      const int64_t scales = kind == Kind::kFp8PerRow ? rows : 1;
      for (int64_t r = 0; r < scales; ++r) w.scales.push_back(scale(generator));
      break;
    }
  }
  w.data = m.bytes.data();
  return m;
}

std::vector<float> RandomInputs(int64_t n, int64_t cols, uint64_t seed) {
  std::mt19937_64 generator(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n * cols));
  for (float& v : x) v = normal(generator);
  return x;
}

// y[i, r] in double, and sum_k |term| for the tolerance.
struct Reference {
  std::vector<double> y;
  std::vector<double> magnitude;
};

Reference ReferenceLinear(const TestMatrix& m, const std::vector<float>& x,
                          int64_t n) {
  const LinearWeight& w = m.weight;
  Reference ref;
  ref.y.assign(static_cast<size_t>(n * w.rows), 0.0);
  ref.magnitude.assign(ref.y.size(), 0.0);
  for (int64_t r = 0; r < w.rows; ++r) {
    const double scale = w.scales.empty()       ? 1.0
                         : w.scales.size() == 1 ? w.scales[0]
                                                : w.scales[r];
    for (int64_t i = 0; i < n; ++i) {
      double sum = 0.0, magnitude = 0.0;
      for (int64_t k = 0; k < w.cols; ++k) {
        const double term = StoredValue(w.dtype, m.bytes, r * w.cols + k) *
                            scale * x[i * w.cols + k];
        sum += term;
        magnitude += std::fabs(term);
      }
      ref.y[i * w.rows + r] = sum;
      ref.magnitude[i * w.rows + r] = magnitude;
    }
  }
  return ref;
}

// The kernels accumulate in float32 (in up to 16 lanes, then a reduction),
// so each output may differ from the exact sum by a rounding error bounded
// by a small multiple of eps(float32) = 6e-8 times the number of additions
// per lane times the sum of |terms|. With at most ~1000 columns we allow a
// relative 1e-5 of the sum of |terms|.
constexpr double kRelativeTolerance = 1e-5;

void ExpectMatchesReference(const Reference& ref, const std::vector<float>& y,
                            int64_t rows) {
  ASSERT_EQ(ref.y.size(), y.size());
  for (size_t j = 0; j < y.size(); ++j) {
    const double tolerance = kRelativeTolerance * ref.magnitude[j] + 1e-30;
    ASSERT_NEAR(y[j], ref.y[j], tolerance)
        << "input " << j / rows << " row " << j % rows;
  }
}

// (kind, rows, cols, n)
using LinearParam = std::tuple<Kind, int64_t, int64_t, int64_t>;

class LinearTest : public ::testing::TestWithParam<LinearParam> {};

TEST_P(LinearTest, MatchesFloat64Reference) {
  const auto [kind, rows, cols, n] = GetParam();
  const TestMatrix m = MakeMatrix(kind, rows, cols, rows * 1000 + cols);
  const std::vector<float> x = RandomInputs(n, cols, n * 7 + cols);
  const Reference ref = ReferenceLinear(m, x, n);
  for (int threads : {1, 2}) {
    SCOPED_TRACE(::testing::Message() << threads << " threads");
    ThreadPool pool(threads);
    // A guard value after y catches writes past the end.
    std::vector<float> y(static_cast<size_t>(n * rows + 1), std::nanf(""));
    y.back() = 12345.0f;
    Linear(m.weight, x.data(), n, y.data(), pool);
    EXPECT_EQ(y.back(), 12345.0f);
    y.pop_back();
    ExpectMatchesReference(ref, y, rows);
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllDTypes, LinearTest,
    ::testing::Combine(::testing::Values(Kind::kF32, Kind::kF16, Kind::kBF16,
                                         Kind::kFp8PerTensor, Kind::kFp8PerRow),
                       ::testing::Values<int64_t>(1, 5, 37),
                       ::testing::Values<int64_t>(7, 33, 1000),
                       ::testing::Values<int64_t>(1, 3, 17)),
    [](const ::testing::TestParamInfo<LinearParam>& info) {
      return KindName(std::get<0>(info.param)) + "_rows" +
             std::to_string(std::get<1>(info.param)) + "_cols" +
             std::to_string(std::get<2>(info.param)) + "_n" +
             std::to_string(std::get<3>(info.param));
    });

TEST(RunLinearTest, SeveralJobsEqualSeparateCalls) {
  // Jobs of every dtype and of different sizes, so the tasks of one job
  // interleave with another's across threads.
  const std::vector<std::tuple<Kind, int64_t, int64_t, int64_t>> shapes = {
      {Kind::kBF16, 37, 33, 3},
      {Kind::kFp8PerRow, 5, 1000, 17},
      {Kind::kF32, 1, 7, 1},
      {Kind::kF16, 70, 64, 2},
      {Kind::kFp8PerTensor, 16, 520, 5},
      {Kind::kBF16, 3, 1000, 0}};
  std::vector<TestMatrix> matrices;
  std::vector<std::vector<float>> inputs;
  for (size_t j = 0; j < shapes.size(); ++j) {
    const auto [kind, rows, cols, n] = shapes[j];
    matrices.push_back(MakeMatrix(kind, rows, cols, 100 + j));
    inputs.push_back(RandomInputs(std::max<int64_t>(n, 1), cols, 200 + j));
  }
  for (int threads : {1, 2}) {
    SCOPED_TRACE(::testing::Message() << threads << " threads");
    ThreadPool pool(threads);
    std::vector<std::vector<float>> together(shapes.size()),
        separate(shapes.size());
    std::vector<LinearJob> jobs;
    for (size_t j = 0; j < shapes.size(); ++j) {
      const auto [kind, rows, cols, n] = shapes[j];
      together[j].assign(static_cast<size_t>(std::max<int64_t>(n, 1) * rows),
                         -7.0f);
      separate[j] = together[j];
      jobs.push_back(
          {&matrices[j].weight, inputs[j].data(), n, together[j].data()});
    }
    RunLinear(jobs, pool);
    for (size_t j = 0; j < shapes.size(); ++j) {
      Linear(matrices[j].weight, inputs[j].data(), std::get<3>(shapes[j]),
             separate[j].data(), pool);
    }
    for (size_t j = 0; j < shapes.size(); ++j) {
      SCOPED_TRACE(::testing::Message() << "job " << j);
      EXPECT_EQ(together[j], separate[j]);
      const auto [kind, rows, cols, n] = shapes[j];
      if (n == 0) {
        // Nothing to compute: y is left alone.
        EXPECT_EQ(together[j], std::vector<float>(together[j].size(), -7.0f));
        continue;
      }
      ExpectMatchesReference(ReferenceLinear(matrices[j], inputs[j], n),
                             together[j], rows);
    }
  }
}

TEST(RunLinearTest, NoJobsIsANoOp) {
  ThreadPool pool(2);
  RunLinear({}, pool);
  SUCCEED();
}

TEST(DecodeRowTest, EqualsDecodedRowTimesScale) {
  for (Kind kind : {Kind::kF32, Kind::kF16, Kind::kBF16, Kind::kFp8PerTensor,
                    Kind::kFp8PerRow}) {
    SCOPED_TRACE(KindName(kind));
    const TestMatrix m = MakeMatrix(kind, 5, 1000, 77);
    const LinearWeight& w = m.weight;
    std::vector<float> row(static_cast<size_t>(w.cols));
    for (int64_t r = 0; r < w.rows; ++r) {
      w.DecodeRow(r, row.data());
      const float scale = w.scales.empty()       ? 1.0f
                          : w.scales.size() == 1 ? w.scales[0]
                                                 : w.scales[r];
      EXPECT_EQ(w.RowScale(r), scale);
      for (int64_t k = 0; k < w.cols; ++k) {
        // Decoded values are exact in float; one float multiply by the scale.
        const float want =
            static_cast<float>(StoredValue(w.dtype, m.bytes, r * w.cols + k)) *
            scale;
        ASSERT_EQ(row[k], want) << "row " << r << " col " << k;
      }
    }
  }
}

}  // namespace
}  // namespace moe

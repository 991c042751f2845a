#include "engine/cuda/embedding.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <vector>

#include "tests/gpu/gpu_test_util.h"

namespace moe::cuda {
namespace {

using ::moe::cuda::testing::DeviceArray;
using ::moe::cuda::testing::FromBf16;
using ::moe::cuda::testing::RandomFloats;
using ::moe::cuda::testing::ToBf16;

struct Shape {
  int vocab;
  int hidden;
  std::vector<int32_t> ids;
};

// Widening BF16 to float32 is exact, so the rows must match bit for bit.
// Only the rows the ids name are uploaded; the rest of the table keeps its
// poison (NaN), so reading a wrong row shows.
TEST(EmbeddingTest, GathersTheRowsOfTheIdsExactly) {
  MOE_SKIP_WITHOUT_GPU();
  // Skywork-MoE's table (65536 x 4608), with its first and last rows and a
  // repeated id; odd sizes.
  const Shape shapes[] = {{65536,
                           4608,
                           {0, 65535, 17, 40000, 17, 1, 2, 3, 9999, 65534, 5, 6,
                            7, 8, 12345, 54321, 32768}},
                          {100, 100, {99, 0, 42}},
                          {7, 1, {6}}};
  uint32_t seed = 1;
  for (const Shape& shape : shapes) {
    SCOPED_TRACE(::testing::Message()
                 << "vocab " << shape.vocab << " hidden " << shape.hidden);
    const int n = static_cast<int>(shape.ids.size());
    DeviceArray<__nv_bfloat16> table(static_cast<size_t>(shape.vocab) *
                                     shape.hidden);
    std::vector<float> expected(static_cast<size_t>(n) * shape.hidden);
    for (int32_t id : std::set<int32_t>(shape.ids.begin(), shape.ids.end())) {
      const std::vector<__nv_bfloat16> row =
          ToBf16(RandomFloats(shape.hidden, seed++));
      MOE_ASSERT_CUDA(cudaMemcpy(
          table.get() + static_cast<size_t>(id) * shape.hidden, row.data(),
          row.size() * sizeof(row[0]), cudaMemcpyHostToDevice));
      const std::vector<float> values = FromBf16(row);
      for (int i = 0; i < n; ++i) {
        if (shape.ids[i] != id) continue;
        std::copy(values.begin(), values.end(),
                  expected.begin() + static_cast<size_t>(i) * shape.hidden);
      }
    }
    DeviceArray<int32_t> ids(shape.ids);
    DeviceArray<float> out(expected.size());
    MOE_ASSERT_CUDA(EmbedTokens(table.get(), shape.hidden, ids.get(), n,
                                out.get(), nullptr));
    const std::vector<float> got = out.ToHost();
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(expected[i], got[i]) << "element " << i;
    }
  }
}

TEST(EmbeddingTest, RejectsBadArguments) {
  MOE_SKIP_WITHOUT_GPU();
  DeviceArray<__nv_bfloat16> table(16);
  DeviceArray<int32_t> ids(1);
  DeviceArray<float> out(16);
  EXPECT_EQ(cudaErrorInvalidValue,
            EmbedTokens(table.get(), 16, ids.get(), -1, out.get(), nullptr));
  EXPECT_EQ(cudaErrorInvalidValue,
            EmbedTokens(table.get(), 0, ids.get(), 1, out.get(), nullptr));
  EXPECT_EQ(cudaErrorInvalidValue,
            EmbedTokens(nullptr, 16, ids.get(), 1, out.get(), nullptr));
  EXPECT_EQ(cudaErrorInvalidValue,
            EmbedTokens(table.get(), 16, nullptr, 1, out.get(), nullptr));
  EXPECT_EQ(cudaErrorInvalidValue,
            EmbedTokens(table.get(), 16, ids.get(), 1, nullptr, nullptr));
  EXPECT_EQ(cudaSuccess,
            EmbedTokens(table.get(), 16, ids.get(), 0, out.get(), nullptr));
}

}  // namespace
}  // namespace moe::cuda

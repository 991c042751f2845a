#include "engine/cuda/greedy_sampling.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "tests/gpu/gpu_test_util.h"

namespace moe::cuda {
namespace {

using ::moe::cuda::testing::DeviceArray;
using ::moe::cuda::testing::RandomFloats;

// The index of the largest logit of each row, the lowest among ties.
std::vector<int32_t> Reference(const std::vector<float>& logits, int n,
                               int vocab) {
  std::vector<int32_t> ids(n);
  for (int i = 0; i < n; ++i) {
    const float* row = logits.data() + static_cast<size_t>(i) * vocab;
    int32_t best = 0;
    for (int32_t c = 1; c < vocab; ++c) {
      if (row[c] > row[best]) best = c;
    }
    ids[i] = best;
  }
  return ids;
}

// Runs the kernel; the argmax involves no arithmetic, so ids match exactly.
std::vector<int32_t> Sample(const std::vector<float>& logits, int n,
                            int vocab) {
  DeviceArray<float> device_logits(logits);
  DeviceArray<int32_t> ids(n);
  EXPECT_EQ(cudaSuccess,
            GreedySample(device_logits.get(), n, vocab, ids.get(), nullptr));
  return ids.ToHost();
}

TEST(GreedySamplingTest, MatchesReferenceArgmax) {
  MOE_SKIP_WITHOUT_GPU();
  struct Shape {
    int n;
    int vocab;
  };
  // Skywork-MoE's vocabulary, odd sizes, a vocabulary smaller than a block.
  const Shape shapes[] = {
      {17, 65536}, {1, 65536}, {3, 100}, {5, 32001}, {17, 1}};
  uint32_t seed = 1;
  for (const Shape& shape : shapes) {
    SCOPED_TRACE(::testing::Message()
                 << "n " << shape.n << " vocab " << shape.vocab);
    const std::vector<float> logits =
        RandomFloats(static_cast<size_t>(shape.n) * shape.vocab, seed++, 4.0f);
    EXPECT_EQ(Reference(logits, shape.n, shape.vocab),
              Sample(logits, shape.n, shape.vocab));
  }
}

TEST(GreedySamplingTest, BreaksTiesToTheLowestIndex) {
  MOE_SKIP_WITHOUT_GPU();
  constexpr int kVocab = 65536;
  constexpr int kRows = 5;
  std::vector<float> logits = RandomFloats(size_t{kRows} * kVocab, 7);
  auto row = [&](int i) {
    return logits.data() + static_cast<size_t>(i) * kVocab;
  };
  // Row 0: the maximum at two indices held by different threads and warps.
  row(0)[40000] = 100.0f;
  row(0)[7] = 100.0f;
  row(0)[513] = 100.0f;
  // Row 1: all equal.
  std::fill(row(1), row(1) + kVocab, 0.5f);
  // Row 2: all -inf.
  std::fill(row(2), row(2) + kVocab, -INFINITY);
  // Row 3: the maximum at the last index.
  row(3)[kVocab - 1] = 100.0f;
  // Row 4: the same maximum twice within one thread's share.
  row(4)[1000 + 512] = 100.0f;
  row(4)[1000 + 2 * 512] = 100.0f;
  const std::vector<int32_t> expected = {7, 0, 0, kVocab - 1, 1000 + 512};
  EXPECT_EQ(expected, Sample(logits, kRows, kVocab));
  EXPECT_EQ(expected, Reference(logits, kRows, kVocab));
}

TEST(GreedySamplingTest, RejectsBadArguments) {
  MOE_SKIP_WITHOUT_GPU();
  DeviceArray<float> logits(8);
  DeviceArray<int32_t> ids(1);
  EXPECT_EQ(cudaErrorInvalidValue,
            GreedySample(logits.get(), -1, 8, ids.get(), nullptr));
  EXPECT_EQ(cudaErrorInvalidValue,
            GreedySample(logits.get(), 1, 0, ids.get(), nullptr));
  EXPECT_EQ(cudaErrorInvalidValue,
            GreedySample(nullptr, 1, 8, ids.get(), nullptr));
  EXPECT_EQ(cudaErrorInvalidValue,
            GreedySample(logits.get(), 1, 8, nullptr, nullptr));
  EXPECT_EQ(cudaSuccess, GreedySample(logits.get(), 0, 8, ids.get(), nullptr));
}

}  // namespace
}  // namespace moe::cuda

#include "engine/cuda/paged_kv.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

#include "tests/gpu/device_paged_batch.h"
#include "tests/gpu/gpu_test_util.h"

namespace moe::cuda {
namespace {

using ::moe::cuda::testing::DeviceArray;
using ::moe::cuda::testing::DevicePagedBatch;
using ::moe::cuda::testing::RandomFloats;
using ::moe::cuda::testing::ToBf16;

// The bits of BF16 values, to compare them exactly (NaN included).
std::vector<uint16_t> Bits(const std::vector<__nv_bfloat16>& values) {
  std::vector<uint16_t> bits(values.size());
  std::memcpy(bits.data(), values.data(), bits.size() * sizeof(bits[0]));
  return bits;
}

// Counts the elements whose bits differ, naming the first.
void ExpectSameBits(const std::vector<uint16_t>& expected,
                    const std::vector<uint16_t>& got) {
  ASSERT_EQ(expected.size(), got.size());
  size_t differing = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    if (expected[i] == got[i]) continue;
    if (differing++ == 0) {
      ADD_FAILURE() << "element " << i << ": expected 0x" << std::hex
                    << expected[i] << ", got 0x" << got[i];
    }
  }
  EXPECT_EQ(0u, differing);
}

struct Case {
  int kv_heads;
  int head_dim;
  int block_size;
};

// Writes a ragged batch (a 300-token prefill chunk at positions 40..339 and
// decode rows at 57, 0 and 1023, rows shuffled) into pools whose blocks are
// handed out in random order, and checks every element of both pools: the
// written slots hold the BF16 rounding (nearest even) of the rows, bit for
// bit, and every other slot still holds the poison the pools started with.
TEST(PagedKvTest, WritesEachRowIntoItsSlot) {
  MOE_SKIP_WITHOUT_GPU();
  // Skywork-MoE's 36 kv heads of 128 in blocks of 16; 2 kv heads of 64 in
  // blocks of 7; one slot per block.
  const Case cases[] = {{36, 128, 16}, {2, 64, 7}, {1, 256, 1}};
  // For each sequence: the positions the batch writes.
  struct Sequence {
    int first;
    int count;
  };
  const std::vector<Sequence> sequences = {
      {57, 1}, {40, 300}, {0, 1}, {1023, 1}};
  uint32_t seed = 1;
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message()
                 << "kv_heads " << c.kv_heads << " head_dim " << c.head_dim
                 << " block_size " << c.block_size);
    std::mt19937 engine(seed++);
    // Block tables: sequence s covers positions [0, first + count).
    std::vector<int32_t> offsets;
    int total_blocks = 0;
    for (const Sequence& s : sequences) {
      offsets.push_back(total_blocks);
      total_blocks += (s.first + s.count + c.block_size - 1) / c.block_size;
    }
    PagedKvLayout layout;
    layout.num_blocks = total_blocks + 3;  // spare blocks stay untouched
    layout.block_size = c.block_size;
    layout.kv_heads = c.kv_heads;
    layout.head_dim = c.head_dim;
    std::vector<int32_t> tables(layout.num_blocks);
    std::iota(tables.begin(), tables.end(), 0);
    std::shuffle(tables.begin(), tables.end(), engine);
    tables.resize(total_blocks);

    std::vector<std::pair<int32_t, int32_t>> rows;  // (sequence, position)
    for (int s = 0; s < static_cast<int>(sequences.size()); ++s) {
      for (int i = 0; i < sequences[s].count; ++i) {
        rows.emplace_back(s, sequences[s].first + i);
      }
    }
    std::shuffle(rows.begin(), rows.end(), engine);
    std::vector<int32_t> row_sequences, row_positions;
    for (const auto& [s, p] : rows) {
      row_sequences.push_back(s);
      row_positions.push_back(p);
    }

    const size_t row_elements = static_cast<size_t>(c.kv_heads) * c.head_dim;
    const std::vector<float> keys =
        RandomFloats(rows.size() * row_elements, seed++);
    const std::vector<float> values =
        RandomFloats(rows.size() * row_elements, seed++);
    std::vector<uint16_t> expected_keys(layout.PoolElements(), 0xFFFF);
    std::vector<uint16_t> expected_values(layout.PoolElements(), 0xFFFF);
    const std::vector<uint16_t> key_bits = Bits(ToBf16(keys));
    const std::vector<uint16_t> value_bits = Bits(ToBf16(values));
    for (size_t r = 0; r < rows.size(); ++r) {
      const auto [s, p] = rows[r];
      const int64_t slot =
          int64_t{tables[offsets[s] + p / c.block_size]} * c.block_size +
          p % c.block_size;
      std::copy_n(key_bits.begin() + r * row_elements, row_elements,
                  expected_keys.begin() + slot * row_elements);
      std::copy_n(value_bits.begin() + r * row_elements, row_elements,
                  expected_values.begin() + slot * row_elements);
    }

    const DevicePagedBatch device_batch(row_sequences, row_positions, offsets,
                                        tables);
    const PagedBatch& batch = device_batch.batch();
    DeviceArray<float> device_keys(keys);
    DeviceArray<float> device_values(values);
    DeviceArray<__nv_bfloat16> key_pool(layout.PoolElements());
    DeviceArray<__nv_bfloat16> value_pool(layout.PoolElements());
    MOE_ASSERT_CUDA(WritePagedKv(device_keys.get(), device_values.get(), batch,
                                 layout, key_pool.get(), value_pool.get(),
                                 nullptr));
    ExpectSameBits(expected_keys, Bits(key_pool.ToHost()));
    ExpectSameBits(expected_values, Bits(value_pool.ToHost()));
  }
}

TEST(PagedKvTest, RejectsBadArguments) {
  MOE_SKIP_WITHOUT_GPU();
  const PagedKvLayout layout = {4, 16, 2, 64};
  DeviceArray<int32_t> ints(4);
  DeviceArray<float> rows(2 * 64);
  DeviceArray<__nv_bfloat16> pool(layout.PoolElements());
  PagedBatch batch;
  batch.rows = 1;
  batch.row_sequences = batch.row_positions = batch.block_table_offsets =
      batch.block_tables = ints.get();
  auto write = [&](const PagedBatch& b, const PagedKvLayout& l) {
    return WritePagedKv(rows.get(), rows.get(), b, l, pool.get(), pool.get(),
                        nullptr);
  };
  for (PagedKvLayout bad :
       {PagedKvLayout{0, 16, 2, 64}, PagedKvLayout{4, 0, 2, 64},
        PagedKvLayout{4, 16, 0, 64}, PagedKvLayout{4, 16, 2, 0}}) {
    EXPECT_EQ(cudaErrorInvalidValue, write(batch, bad));
  }
  PagedBatch bad_batch = batch;
  bad_batch.rows = -1;
  EXPECT_EQ(cudaErrorInvalidValue, write(bad_batch, layout));
  bad_batch = batch;
  bad_batch.block_tables = nullptr;
  EXPECT_EQ(cudaErrorInvalidValue, write(bad_batch, layout));
  EXPECT_EQ(cudaErrorInvalidValue,
            WritePagedKv(rows.get(), rows.get(), batch, layout, nullptr,
                         pool.get(), nullptr));
  PagedBatch empty;
  EXPECT_EQ(cudaSuccess, write(empty, layout));
}

}  // namespace
}  // namespace moe::cuda

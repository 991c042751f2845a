#include "engine/cuda/paged_attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

#include "engine/cuda/paged_kv.h"
#include "tests/gpu/device_paged_batch.h"
#include "tests/gpu/gpu_test_util.h"

namespace moe::cuda {
namespace {

using ::moe::cuda::testing::DeviceArray;
using ::moe::cuda::testing::DevicePagedBatch;
using ::moe::cuda::testing::FromBf16;
using ::moe::cuda::testing::RandomFloats;
using ::moe::cuda::testing::RelativeError;
using ::moe::cuda::testing::ToBf16;

// The reference reads the keys and values as the cache holds them (rounded
// to BF16), so what remains is the kernel's float32 arithmetic: dot products
// over head_dim and sums over up to 1024 positions, ~1e-6 relative.
constexpr double kTolerance = 1e-5;

struct Case {
  int heads;
  int kv_heads;
  int head_dim;
  int block_size;
  int sliding_window;
};

// A sequence of the batch: positions [0, history) are cached before the
// step, the batch brings the rows at [history, history + count).
struct Sequence {
  int history;
  int count;
};

// A 300-token prefill chunk starting at position 40 among decode rows, one
// of them a sequence's first token and one at position 1023, and a 3-token
// chunk.
const std::vector<Sequence> kSequences = {
    {57, 1}, {40, 300}, {0, 1}, {1023, 1}, {5, 3}};

// Causal attention from its definition, in double: row (s, p), head h
// attends to the positions [first, p] of sequence s with kv head
// h / (heads / kv_heads), softmax of q.k / sqrt(head_dim), and sums values.
std::vector<double> Reference(
    const Case& c, const std::vector<std::pair<int32_t, int32_t>>& rows,
    const std::vector<float>& q, const std::vector<std::vector<float>>& keys,
    const std::vector<std::vector<float>>& values) {
  const int group = c.heads / c.kv_heads;
  const size_t slot_elements = static_cast<size_t>(c.kv_heads) * c.head_dim;
  std::vector<double> out(q.size());
  std::vector<double> weights;
  for (size_t r = 0; r < rows.size(); ++r) {
    const auto [s, p] = rows[r];
    const int first =
        c.sliding_window > 0 ? std::max(0, p - c.sliding_window + 1) : 0;
    for (int h = 0; h < c.heads; ++h) {
      const size_t q_offset = (r * c.heads + h) * c.head_dim;
      const size_t head_offset = static_cast<size_t>(h / group) * c.head_dim;
      weights.assign(p - first + 1, 0.0);
      double max = -INFINITY;
      for (int t = first; t <= p; ++t) {
        const float* key = keys[s].data() + t * slot_elements + head_offset;
        double dot = 0.0;
        for (int d = 0; d < c.head_dim; ++d)
          dot += double{q[q_offset + d]} * key[d];
        weights[t - first] = dot / std::sqrt(static_cast<double>(c.head_dim));
        max = std::max(max, weights[t - first]);
      }
      double total = 0.0;
      for (double& w : weights) {
        w = std::exp(w - max);
        total += w;
      }
      for (int t = first; t <= p; ++t) {
        const float* value = values[s].data() + t * slot_elements + head_offset;
        const double w = weights[t - first] / total;
        for (int d = 0; d < c.head_dim; ++d) out[q_offset + d] += w * value[d];
      }
    }
  }
  return out;
}

// Fills a paged cache with the sequences' history (block ids handed out in
// random order, spare blocks left poisoned), writes the batch rows' keys and
// values with WritePagedKv, runs PagedAttention on rows in shuffled order,
// and compares with the reference. Poisoned slots or outputs show as NaN.
void CheckCase(const Case& c, uint32_t seed) {
  SCOPED_TRACE(::testing::Message()
               << "heads " << c.heads << " kv_heads " << c.kv_heads
               << " head_dim " << c.head_dim << " block_size " << c.block_size
               << " sliding_window " << c.sliding_window);
  std::mt19937 engine(seed);
  const size_t slot_elements = static_cast<size_t>(c.kv_heads) * c.head_dim;
  const int num_sequences = static_cast<int>(kSequences.size());

  // Every position's keys and values, float32 and as BF16 bits.
  std::vector<std::vector<float>> keys, values;
  std::vector<int32_t> offsets;
  int total_blocks = 0;
  for (const Sequence& s : kSequences) {
    const int length = s.history + s.count;
    keys.push_back(RandomFloats(length * slot_elements, engine()));
    values.push_back(RandomFloats(length * slot_elements, engine()));
    offsets.push_back(total_blocks);
    total_blocks += (length + c.block_size - 1) / c.block_size;
  }
  PagedKvLayout layout;
  layout.num_blocks = total_blocks + 3;
  layout.block_size = c.block_size;
  layout.kv_heads = c.kv_heads;
  layout.head_dim = c.head_dim;
  std::vector<int32_t> tables(layout.num_blocks);
  std::iota(tables.begin(), tables.end(), 0);
  std::shuffle(tables.begin(), tables.end(), engine);
  tables.resize(total_blocks);

  // The history, written on the host.
  __nv_bfloat16_raw poison;
  poison.x = 0xFFFF;  // NaN, as DeviceArray poisons
  std::vector<__nv_bfloat16> key_pool(layout.PoolElements(), poison);
  std::vector<__nv_bfloat16> value_pool(layout.PoolElements(), poison);
  for (int s = 0; s < num_sequences; ++s) {
    const std::vector<__nv_bfloat16> key_bf16 = ToBf16(keys[s]);
    const std::vector<__nv_bfloat16> value_bf16 = ToBf16(values[s]);
    for (int p = 0; p < kSequences[s].history; ++p) {
      const int64_t slot =
          int64_t{tables[offsets[s] + p / c.block_size]} * c.block_size +
          p % c.block_size;
      std::copy_n(key_bf16.begin() + p * slot_elements, slot_elements,
                  key_pool.begin() + slot * slot_elements);
      std::copy_n(value_bf16.begin() + p * slot_elements, slot_elements,
                  value_pool.begin() + slot * slot_elements);
    }
  }

  // The batch: its rows shuffled, their queries, keys and values.
  std::vector<std::pair<int32_t, int32_t>> rows;  // (sequence, position)
  for (int s = 0; s < num_sequences; ++s) {
    for (int i = 0; i < kSequences[s].count; ++i) {
      rows.emplace_back(s, kSequences[s].history + i);
    }
  }
  std::shuffle(rows.begin(), rows.end(), engine);
  std::vector<int32_t> row_sequences, row_positions;
  std::vector<float> new_keys, new_values;
  for (const auto& [s, p] : rows) {
    row_sequences.push_back(s);
    row_positions.push_back(p);
    new_keys.insert(new_keys.end(), keys[s].begin() + p * slot_elements,
                    keys[s].begin() + (p + 1) * slot_elements);
    new_values.insert(new_values.end(), values[s].begin() + p * slot_elements,
                      values[s].begin() + (p + 1) * slot_elements);
  }
  const std::vector<float> q =
      RandomFloats(rows.size() * c.heads * c.head_dim, engine());

  const DevicePagedBatch device_batch(row_sequences, row_positions, offsets,
                                      tables);
  const PagedBatch& batch = device_batch.batch();
  DeviceArray<__nv_bfloat16> device_key_pool(key_pool);
  DeviceArray<__nv_bfloat16> device_value_pool(value_pool);
  DeviceArray<float> device_new_keys(new_keys);
  DeviceArray<float> device_new_values(new_values);
  DeviceArray<float> device_q(q);
  DeviceArray<float> out(q.size());
  MOE_ASSERT_CUDA(WritePagedKv(device_new_keys.get(), device_new_values.get(),
                               batch, layout, device_key_pool.get(),
                               device_value_pool.get(), nullptr));
  MOE_ASSERT_CUDA(PagedAttention(device_q.get(), c.heads, c.sliding_window,
                                 batch, layout, device_key_pool.get(),
                                 device_value_pool.get(), out.get(), nullptr));

  for (int s = 0; s < num_sequences; ++s) {
    keys[s] = FromBf16(ToBf16(keys[s]));
    values[s] = FromBf16(ToBf16(values[s]));
  }
  EXPECT_LT(RelativeError(out.ToHost(), Reference(c, rows, q, keys, values)),
            kTolerance);
}

TEST(PagedAttentionTest, SkyworkShapeMatchesFloat64Reference) {
  MOE_SKIP_WITHOUT_GPU();
  CheckCase({36, 36, 128, 16, 0}, 1);
}

TEST(PagedAttentionTest, GroupedQueryShapesMatchFloat64Reference) {
  MOE_SKIP_WITHOUT_GPU();
  CheckCase({8, 2, 64, 7, 0}, 2);
  CheckCase({8, 2, 64, 16, 0}, 3);
}

TEST(PagedAttentionTest, SlidingWindowMatchesFloat64Reference) {
  MOE_SKIP_WITHOUT_GPU();
  CheckCase({8, 2, 64, 7, 50}, 4);
  // The largest head_dim, all heads on one kv head.
  CheckCase({4, 1, 256, 16, 100}, 5);
  // A head_dim that is not a multiple of 32; a window of one position, the
  // row's own.
  CheckCase({6, 3, 80, 5, 1}, 6);
}

TEST(PagedAttentionTest, RejectsBadArguments) {
  MOE_SKIP_WITHOUT_GPU();
  const PagedKvLayout layout = {4, 16, 2, 64};
  DeviceArray<int32_t> ints(4);
  DeviceArray<float> q(8 * 64);
  DeviceArray<float> out(8 * 64);
  DeviceArray<__nv_bfloat16> pool(layout.PoolElements());
  PagedBatch batch;
  batch.rows = 1;
  batch.row_sequences = batch.row_positions = batch.block_table_offsets =
      batch.block_tables = ints.get();
  auto attend = [&](int heads, int window, const PagedBatch& b,
                    const PagedKvLayout& l) {
    return PagedAttention(q.get(), heads, window, b, l, pool.get(), pool.get(),
                          out.get(), nullptr);
  };
  EXPECT_EQ(cudaErrorInvalidValue, attend(0, 0, batch, layout));
  EXPECT_EQ(cudaErrorInvalidValue, attend(3, 0, batch, layout));  // 3 % 2
  EXPECT_EQ(cudaErrorInvalidValue, attend(1, 0, batch, layout));  // < kv
  EXPECT_EQ(cudaErrorInvalidValue, attend(65536, 0, batch, layout));
  EXPECT_EQ(cudaErrorInvalidValue, attend(8, -1, batch, layout));
  EXPECT_EQ(cudaErrorInvalidValue,
            attend(8, 0, batch, PagedKvLayout{4, 16, 2, 257}));
  EXPECT_EQ(cudaErrorInvalidValue,
            attend(8, 0, batch, PagedKvLayout{4, 0, 2, 64}));
  PagedBatch bad_batch = batch;
  bad_batch.rows = -1;
  EXPECT_EQ(cudaErrorInvalidValue, attend(8, 0, bad_batch, layout));
  bad_batch = batch;
  bad_batch.row_positions = nullptr;
  EXPECT_EQ(cudaErrorInvalidValue, attend(8, 0, bad_batch, layout));
  EXPECT_EQ(cudaErrorInvalidValue,
            PagedAttention(nullptr, 8, 0, batch, layout, pool.get(), pool.get(),
                           out.get(), nullptr));
  EXPECT_EQ(cudaSuccess, attend(8, 0, PagedBatch{}, layout));
}

}  // namespace
}  // namespace moe::cuda

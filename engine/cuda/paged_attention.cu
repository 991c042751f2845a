#include <cstdint>

#include "core/cuda/cuda_check.h"
#include "core/cuda/warp_reduce.cuh"
#include "engine/cuda/paged_attention.h"

namespace moe::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;

// One block per (row, query head). Warp w visits positions first + w,
// first + w + kWarps, ... of the window, one key per step: lane l holds
// dimensions l, l + 32, ... (kChunks of them, head_dim <= 32 * kChunks) of
// the query and of its running output, so a key row is read by the whole
// warp at once. Each warp keeps its own running max, sum of exponentials
// and unnormalized output; the block merges the warps' states at the end.
template <int kChunks>
__global__ void __launch_bounds__(kThreads)
    PagedAttentionKernel(const float* q, int heads, int sliding_window,
                         PagedBatch batch, PagedKvLayout layout,
                         const __nv_bfloat16* key_pool,
                         const __nv_bfloat16* value_pool, float* out) {
  __shared__ float warp_max[kWarps];
  __shared__ float warp_total[kWarps];
  __shared__ float warp_output[kWarps][32 * kChunks];

  const int row = blockIdx.x;
  const int head = blockIdx.y;
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int head_dim = layout.head_dim;
  const int kv_head = head / (heads / layout.kv_heads);
  const float scale = 1.0f / sqrtf(static_cast<float>(head_dim));
  const int64_t q_offset = (int64_t{row} * heads + head) * head_dim;

  float query[kChunks];
  float output[kChunks];
#pragma unroll
  for (int j = 0; j < kChunks; ++j) {
    const int d = lane + 32 * j;
    query[j] = d < head_dim ? q[q_offset + d] : 0.0f;
    output[j] = 0.0f;
  }

  const int position = batch.row_positions[row];
  const int first =
      sliding_window > 0 ? max(0, position - sliding_window + 1) : 0;
  const int32_t* block_table =
      batch.block_tables + batch.block_table_offsets[batch.row_sequences[row]];
  const int64_t slot_elements = int64_t{layout.kv_heads} * head_dim;
  const int64_t head_offset = int64_t{kv_head} * head_dim;

  // Online softmax: running_max starts at -inf, so the first key's
  // correction exp(-inf) is 0 and wipes nothing but zeros.
  float running_max = -INFINITY;
  float total = 0.0f;
  for (int p = first + warp; p <= position; p += kWarps) {
    const int64_t slot =
        int64_t{block_table[p / layout.block_size]} * layout.block_size +
        p % layout.block_size;
    const __nv_bfloat16* key = key_pool + slot * slot_elements + head_offset;
    const __nv_bfloat16* value =
        value_pool + slot * slot_elements + head_offset;
    float dot = 0.0f;
#pragma unroll
    for (int j = 0; j < kChunks; ++j) {
      const int d = lane + 32 * j;
      if (d < head_dim) dot += query[j] * __bfloat162float(key[d]);
    }
    const float score = WarpSum(dot) * scale;
    const float new_max = fmaxf(running_max, score);
    const float correction = expf(running_max - new_max);
    const float weight = expf(score - new_max);
    total = total * correction + weight;
#pragma unroll
    for (int j = 0; j < kChunks; ++j) {
      const int d = lane + 32 * j;
      if (d < head_dim) {
        output[j] =
            output[j] * correction + weight * __bfloat162float(value[d]);
      }
    }
    running_max = new_max;
  }

  if (lane == 0) {
    warp_max[warp] = running_max;
    warp_total[warp] = total;
  }
#pragma unroll
  for (int j = 0; j < kChunks; ++j)
    warp_output[warp][lane + 32 * j] = output[j];
  __syncthreads();

  // Warp 0 always saw position `first`, so the block max is finite; a warp
  // that saw no key has max -inf and weighs exp(-inf) = 0.
  float block_max = -INFINITY;
  for (int w = 0; w < kWarps; ++w) block_max = fmaxf(block_max, warp_max[w]);
  float factors[kWarps];
  float block_total = 0.0f;
  for (int w = 0; w < kWarps; ++w) {
    factors[w] = expf(warp_max[w] - block_max);
    block_total += warp_total[w] * factors[w];
  }
  for (int d = threadIdx.x; d < head_dim; d += kThreads) {
    float sum = 0.0f;
    for (int w = 0; w < kWarps; ++w) sum += warp_output[w][d] * factors[w];
    out[q_offset + d] = sum / block_total;
  }
}

template <int kChunks>
cudaError_t Launch(const float* q, int heads, int sliding_window,
                   const PagedBatch& batch, const PagedKvLayout& layout,
                   const __nv_bfloat16* key_pool,
                   const __nv_bfloat16* value_pool, float* out,
                   cudaStream_t stream) {
  const dim3 grid(batch.rows, heads);
  return LaunchError([&] {
    PagedAttentionKernel<kChunks><<<grid, kThreads, 0, stream>>>(
        q, heads, sliding_window, batch, layout, key_pool, value_pool, out);
  });
}

}  // namespace

cudaError_t PagedAttention(const float* q, int heads, int sliding_window,
                           const PagedBatch& batch, const PagedKvLayout& layout,
                           const __nv_bfloat16* key_pool,
                           const __nv_bfloat16* value_pool, float* out,
                           cudaStream_t stream) {
  // gridDim.y holds the heads: at most 65535.
  if (!layout.IsValid() || !batch.IsValid() ||
      layout.head_dim > kMaxAttentionHeadDim || heads < 1 || heads > 65535 ||
      heads % layout.kv_heads != 0 || sliding_window < 0) {
    return cudaErrorInvalidValue;
  }
  if (batch.rows == 0) return cudaSuccess;
  if (q == nullptr || key_pool == nullptr || value_pool == nullptr ||
      out == nullptr) {
    return cudaErrorInvalidValue;
  }
  // Registers per lane grow with the chunks: take the fewest that hold
  // head_dim.
  if (layout.head_dim <= 64) {
    return Launch<2>(q, heads, sliding_window, batch, layout, key_pool,
                     value_pool, out, stream);
  }
  if (layout.head_dim <= 128) {
    return Launch<4>(q, heads, sliding_window, batch, layout, key_pool,
                     value_pool, out, stream);
  }
  return Launch<8>(q, heads, sliding_window, batch, layout, key_pool,
                   value_pool, out, stream);
}

}  // namespace moe::cuda

#include "core/cuda/cuda_check.h"
#include "engine/cuda/paged_kv.h"

namespace moe::cuda {
namespace {

constexpr int kThreads = 256;

// One block per row: finds the row's slot, then copies its kv_heads *
// head_dim keys and values there, consecutive threads on consecutive
// elements.
__global__ void __launch_bounds__(kThreads)
    WritePagedKvKernel(const float* keys, const float* values, PagedBatch batch,
                       PagedKvLayout layout, __nv_bfloat16* key_pool,
                       __nv_bfloat16* value_pool) {
  const int row = blockIdx.x;
  const int position = batch.row_positions[row];
  const int32_t* block_table =
      batch.block_tables + batch.block_table_offsets[batch.row_sequences[row]];
  const int64_t slot =
      int64_t{block_table[position / layout.block_size]} * layout.block_size +
      position % layout.block_size;
  const int row_elements = layout.kv_heads * layout.head_dim;
  const float* source_keys = keys + int64_t{row} * row_elements;
  const float* source_values = values + int64_t{row} * row_elements;
  __nv_bfloat16* target_keys = key_pool + slot * row_elements;
  __nv_bfloat16* target_values = value_pool + slot * row_elements;
  for (int i = threadIdx.x; i < row_elements; i += kThreads) {
    target_keys[i] = __float2bfloat16_rn(source_keys[i]);
    target_values[i] = __float2bfloat16_rn(source_values[i]);
  }
}

}  // namespace

cudaError_t WritePagedKv(const float* keys, const float* values,
                         const PagedBatch& batch, const PagedKvLayout& layout,
                         __nv_bfloat16* key_pool, __nv_bfloat16* value_pool,
                         cudaStream_t stream) {
  if (!layout.IsValid() || !batch.IsValid()) {
    return cudaErrorInvalidValue;
  }
  if (batch.rows == 0) return cudaSuccess;
  if (keys == nullptr || values == nullptr || key_pool == nullptr ||
      value_pool == nullptr) {
    return cudaErrorInvalidValue;
  }
  return LaunchError([&] {
    WritePagedKvKernel<<<batch.rows, kThreads, 0, stream>>>(
        keys, values, batch, layout, key_pool, value_pool);
  });
}

}  // namespace moe::cuda

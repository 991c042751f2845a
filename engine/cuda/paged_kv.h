#ifndef MOE_ENGINE_CUDA_PAGED_KV_H_
#define MOE_ENGINE_CUDA_PAGED_KV_H_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace moe::cuda {

// The shape of one layer's paged KV cache on the device: a keys pool and a
// values pool, each BF16 [num_blocks, block_size, kv_heads, head_dim],
// row-major. Position p of a sequence lives in slot p % block_size of block
// block_table[p / block_size], where block_table is that sequence's list of
// block ids. Sequences take whole blocks, so memory is shared at the
// granularity of one block.
struct PagedKvLayout {
  int num_blocks = 0;
  int block_size = 0;
  int kv_heads = 0;
  int head_dim = 0;

  bool IsValid() const {
    return num_blocks > 0 && block_size > 0 && kv_heads > 0 && head_dim > 0;
  }
  // Elements of one pool (keys or values).
  int64_t PoolElements() const {
    return int64_t{num_blocks} * block_size * kv_heads * head_dim;
  }
};

// A ragged batch of token rows (prefill chunks and decode rows mixed) and
// where they sit in the cache. Every pointer is a device array of int32.
// Preconditions, unchecked by the kernels: a row's sequence s and position p
// are >= 0, block_tables[block_table_offsets[s] + j] exists for every
// j <= p / block_size and is a block id in [0, num_blocks), and no two
// sequences share a block they write.
struct PagedBatch {
  int rows = 0;
  const int32_t* row_sequences = nullptr;  // [rows] each row's sequence
  const int32_t* row_positions = nullptr;  // [rows] its position there
  // [sequences] where each sequence's block table starts in block_tables.
  const int32_t* block_table_offsets = nullptr;
  const int32_t* block_tables = nullptr;  // all sequences' tables, flat

  // rows >= 0 and, when rows > 0, every array present.
  bool IsValid() const {
    return rows == 0 ||
           (rows > 0 && row_sequences != nullptr && row_positions != nullptr &&
            block_table_offsets != nullptr && block_tables != nullptr);
  }
};

// Stores the batch rows' keys and values (float32 [rows, kv_heads,
// head_dim], device) into their slots of the pools, rounded to BF16 (nearest
// even). Two rows must not share a (sequence, position).
//
// Returns cudaErrorInvalidValue for an invalid layout, rows < 0 or a null
// pointer (when rows > 0); rows == 0 launches nothing.
cudaError_t WritePagedKv(const float* keys, const float* values,
                         const PagedBatch& batch, const PagedKvLayout& layout,
                         __nv_bfloat16* key_pool, __nv_bfloat16* value_pool,
                         cudaStream_t stream);

}  // namespace moe::cuda

#endif  // MOE_ENGINE_CUDA_PAGED_KV_H_

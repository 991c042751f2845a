#ifndef MOE_ENGINE_CUDA_PAGED_ATTENTION_H_
#define MOE_ENGINE_CUDA_PAGED_ATTENTION_H_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "engine/cuda/paged_kv.h"

namespace moe::cuda {

// The largest head_dim PagedAttention takes.
inline constexpr int kMaxAttentionHeadDim = 256;

// Causal grouped-query attention of a ragged batch over the paged KV cache.
// q is float32 [batch.rows, heads, head_dim] (rotary embedding applied), out
// float32 [batch.rows, heads, head_dim], both row-major on the device. A row
// at position p of its sequence attends to that sequence's positions [0, p],
// or to the last sliding_window of them when sliding_window > 0; query head
// h reads kv head h / (heads / kv_heads). Scores are scaled by
// 1/sqrt(head_dim); the softmax is computed online (streaming) in float32.
//
// Every position a row attends to must be in the pools already: write the
// batch's own keys and values (WritePagedKv) first, on the same stream, so
// that the rows of a prefill chunk see each other. Batch preconditions as
// in PagedBatch.
//
// Returns cudaErrorInvalidValue for an invalid layout or batch, a head_dim
// above kMaxAttentionHeadDim, heads < 1 or not a multiple of kv_heads, heads
// above 65535, sliding_window < 0 or a null pointer (when rows > 0);
// rows == 0 launches nothing.
cudaError_t PagedAttention(const float* q, int heads, int sliding_window,
                           const PagedBatch& batch, const PagedKvLayout& layout,
                           const __nv_bfloat16* key_pool,
                           const __nv_bfloat16* value_pool, float* out,
                           cudaStream_t stream);

}  // namespace moe::cuda

#endif  // MOE_ENGINE_CUDA_PAGED_ATTENTION_H_

#ifndef MOE_CORE_KERNELS_ATTENTION_H_
#define MOE_CORE_KERNELS_ATTENTION_H_

#include <cstdint>
#include <span>

#include "core/util/thread_pool.h"

namespace moe {

struct AttentionShape {
  int num_heads = 0;
  int num_kv_heads =
      0;  // query head h reads kv head h / (num_heads / num_kv_heads)
  int head_dim = 0;
  int sliding_window = 0;  // 0: the whole prefix
};

// One sequence's keys and values in fixed-size blocks (a paged KV cache):
// position p is row p % block_size of block p / block_size, and each row is
// [kv_heads, head_dim]. Contiguous arrays are one block of any size that
// holds them.
struct PagedKv {
  std::span<const float* const> key_blocks;
  std::span<const float* const> value_blocks;
  int64_t block_size = 0;
};

// Causal grouped-query attention for one sequence. Query row i (q[n, heads,
// head_dim], rotary embedding applied) sits at position start + i and attends
// to the keys and values at positions [0, start + i] (the last
// sliding_window of them, when set); `kv` holds at least start + n
// positions. Scores are scaled by 1/sqrt(head_dim). Writes out[n, heads,
// head_dim].
void CausalAttention(const AttentionShape& shape, const float* q, int64_t n,
                     int64_t start, const PagedKv& kv, float* out,
                     ThreadPool& pool);

}  // namespace moe

#endif  // MOE_CORE_KERNELS_ATTENTION_H_

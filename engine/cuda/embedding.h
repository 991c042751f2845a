#ifndef MOE_ENGINE_CUDA_EMBEDDING_H_
#define MOE_ENGINE_CUDA_EMBEDDING_H_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace moe::cuda {

// Token embedding lookup: out[i, :] = table[ids[i], :] widened to float32.
// Device arrays, row-major: table BF16 [vocab, hidden], ids int32 [n], out
// float32 [n, hidden].
//
// Precondition: every id is in [0, vocab). The caller validates ids (they
// come from the tokenizer or the sampler); the kernel reads table rows
// unchecked, so an out-of-range id reads outside the table.
//
// Returns cudaErrorInvalidValue for n < 0, hidden < 1 or a null pointer
// (when n > 0); n == 0 launches nothing.
cudaError_t EmbedTokens(const __nv_bfloat16* table, int hidden,
                        const int32_t* ids, int n, float* out,
                        cudaStream_t stream);

}  // namespace moe::cuda

#endif  // MOE_ENGINE_CUDA_EMBEDDING_H_

#ifndef MOE_ENGINE_CUDA_GREEDY_SAMPLING_H_
#define MOE_ENGINE_CUDA_GREEDY_SAMPLING_H_

#include <cuda_runtime.h>

#include <cstdint>

namespace moe::cuda {

// Greedy sampling: token_ids[i] = the index of the largest of logits[i, :],
// the lowest index among ties (the CPU sampler's greedy rule). logits is
// float32 [n, vocab], token_ids int32 [n], device arrays. Logits must not
// be NaN (the result is unspecified then); a row of -inf gives 0.
//
// Returns cudaErrorInvalidValue for n < 0, vocab < 1 or a null pointer (when
// n > 0); n == 0 launches nothing.
cudaError_t GreedySample(const float* logits, int n, int vocab,
                         int32_t* token_ids, cudaStream_t stream);

}  // namespace moe::cuda

#endif  // MOE_ENGINE_CUDA_GREEDY_SAMPLING_H_

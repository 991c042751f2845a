#ifndef MOE_ENGINE_CUDA_MOE_GATING_H_
#define MOE_ENGINE_CUDA_MOE_GATING_H_

#include <cuda_runtime.h>

#include <cstdint>

namespace moe::cuda {

// The limits of SelectExperts: one warp holds a row's logits, two per lane,
// and lane j keeps the j-th selection.
inline constexpr int kMaxGatingExperts = 64;
inline constexpr int kMaxGatingTopK = 32;
// The expert id of every selection of a row with a non-finite logit.
inline constexpr int32_t kNoExpert = -1;

struct GatingOptions {
  int experts = 0;  // in [1, kMaxGatingExperts]
  int top_k = 0;    // in [1, min(experts, kMaxGatingTopK)]
  // Skywork-MoE: logits / (std(logits, unbiased) / gate_norm_std) before the
  // softmax; a row whose std is 0 (or that has one expert) is left as is.
  bool use_logits_norm = false;
  float gate_norm_std = 1.0f;  // > 0 when use_logits_norm
};

// Routes n token rows: from gate logits float32 [n, experts], the optional
// logit normalization, a softmax over all experts, the top_k most probable
// (ties to the lower expert id), their probabilities renormalized to sum
// to 1. Writes expert_ids int32 [n, top_k] and weights float32 [n, top_k],
// each row in descending probability: the order of moe::SelectExperts on
// the CPU. A row with a NaN or infinite logit has no order to choose by: its
// ids are kNoExpert and its weights 0. Device arrays, row-major.
//
// Returns cudaErrorInvalidValue for n < 0, options out of range or a null
// pointer (when n > 0); n == 0 launches nothing.
cudaError_t SelectExperts(const float* logits, int n,
                          const GatingOptions& options, int32_t* expert_ids,
                          float* weights, cudaStream_t stream);

}  // namespace moe::cuda

#endif  // MOE_ENGINE_CUDA_MOE_GATING_H_

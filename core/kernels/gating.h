#ifndef MOE_CORE_KERNELS_GATING_H_
#define MOE_CORE_KERNELS_GATING_H_

#include <cstdint>

#include "core/model/model_config.h"

namespace moe {

// Turns gate logits [n, num_experts] into each row's top-k experts and their
// weights: (Skywork-MoE: logits / (std(logits, unbiased) / gate_norm_std)),
// softmax over all experts, the k largest (ties to the lower id), weights
// renormalized to sum to 1. Writes expert_ids and weights [n, top_k].
void SelectExperts(const ModelConfig& config, const float* logits, int64_t n,
                   int32_t* expert_ids, float* weights);

}  // namespace moe

#endif  // MOE_CORE_KERNELS_GATING_H_

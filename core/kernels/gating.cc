#include "core/kernels/gating.h"

#include <cmath>
#include <numeric>
#include <vector>

#include "core/kernels/cpu_ops.h"

namespace moe {
namespace {

// Skywork-MoE's logit normalization. A row of equal logits has std 0 and is
// left as it is (the softmax is uniform either way).
void NormalizeLogits(float* logits, int count, double target_std) {
  if (count < 2) return;
  double mean = 0.0;
  for (int e = 0; e < count; ++e) mean += logits[e];
  mean /= count;
  double variance = 0.0;
  for (int e = 0; e < count; ++e)
    variance += (logits[e] - mean) * (logits[e] - mean);
  const double std = std::sqrt(variance / (count - 1));
  if (!(std > 0.0)) return;
  const float factor = static_cast<float>(target_std / std);
  for (int e = 0; e < count; ++e) logits[e] *= factor;
}

}  // namespace

void SelectExperts(const ModelConfig& config, const float* logits, int64_t n,
                   int32_t* expert_ids, float* weights) {
  const int experts = config.num_experts;
  const int k = config.top_k;
  std::vector<float> probs(experts);
  std::vector<int32_t> order(experts);
  for (int64_t i = 0; i < n; ++i) {
    std::copy(logits + i * experts, logits + (i + 1) * experts, probs.begin());
    if (config.use_logits_norm) {
      NormalizeLogits(probs.data(), experts, config.gate_norm_std);
    }
    Softmax(probs.data(), experts);
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int32_t a, int32_t b) {
                        return probs[a] > probs[b] ||
                               (probs[a] == probs[b] && a < b);
                      });
    float total = 0.0f;
    for (int j = 0; j < k; ++j) total += probs[order[j]];
    for (int j = 0; j < k; ++j) {
      expert_ids[i * k + j] = order[j];
      weights[i * k + j] = probs[order[j]] / total;
    }
  }
}

}  // namespace moe

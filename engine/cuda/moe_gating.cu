#include "core/cuda/cuda_check.h"
#include "core/cuda/warp_reduce.cuh"
#include "engine/cuda/moe_gating.h"

namespace moe::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
// Below every probability: marks absent and already chosen experts.
constexpr float kNotCandidate = -1.0f;

// One warp per row; lane l holds experts l and l + 32. The arithmetic
// follows the CPU's SelectExperts: mean and std in double, the scale factor
// and the softmax's exponentials in float, their sum in double.
__global__ void __launch_bounds__(kThreads)
    SelectExpertsKernel(const float* logits, int n, GatingOptions options,
                        int32_t* expert_ids, float* weights) {
  // A whole warp leaves together, and the kernel has no block barrier.
  const int row = blockIdx.x * kWarps + threadIdx.x / 32;
  if (row >= n) return;
  const int lane = threadIdx.x % 32;
  const int experts = options.experts;
  const float* row_logits = logits + int64_t{row} * experts;
  const bool present[2] = {lane < experts, lane + 32 < experts};
  float value[2];
  for (int j = 0; j < 2; ++j) {
    value[j] = present[j] ? row_logits[lane + 32 * j] : 0.0f;
  }
  // A non-finite logit leaves the row with no order to choose by: it gets
  // kNoExpert, which its caller fails.
  if (!__all_sync(kFullWarpMask, isfinite(value[0]) && isfinite(value[1]))) {
    if (lane < options.top_k) {
      const int64_t out = int64_t{row} * options.top_k + lane;
      expert_ids[out] = kNoExpert;
      weights[out] = 0.0f;
    }
    return;
  }

  if (options.use_logits_norm && experts > 1) {
    const double mean = WarpSum(double{value[0]} + double{value[1]}) / experts;
    double squares = 0.0;
    for (int j = 0; j < 2; ++j) {
      if (present[j]) squares += (value[j] - mean) * (value[j] - mean);
    }
    const double deviation = sqrt(WarpSum(squares) / (experts - 1));
    if (deviation > 0.0) {
      const float factor =
          static_cast<float>(options.gate_norm_std / deviation);
      for (int j = 0; j < 2; ++j) value[j] *= factor;
    }
  }

  float row_max = -INFINITY;
  for (int j = 0; j < 2; ++j) {
    if (present[j]) row_max = fmaxf(row_max, value[j]);
  }
  row_max = WarpMax(row_max);
  float prob[2];
  double sum = 0.0;
  for (int j = 0; j < 2; ++j) {
    prob[j] = present[j] ? expf(value[j] - row_max) : 0.0f;
    sum += prob[j];
  }
  const float inv_sum = static_cast<float>(1.0 / WarpSum(sum));
  for (int j = 0; j < 2; ++j) {
    prob[j] = present[j] ? prob[j] * inv_sum : kNotCandidate;
  }

  // top_k rounds of a warp argmax over (probability, lower id on ties), a
  // total order, so every lane agrees on the winner. Its owner retires it;
  // lane j remembers the j-th.
  int32_t chosen_id = 0;
  float chosen_prob = 0.0f;
  float chosen_total = 0.0f;
  for (int j = 0; j < options.top_k; ++j) {
    float best = prob[0];
    int best_id = lane;
    if (prob[1] > best) {
      best = prob[1];
      best_id = lane + 32;
    }
    WarpArgmax(best, best_id);
    if (best_id == lane) prob[0] = kNotCandidate;
    if (best_id == lane + 32) prob[1] = kNotCandidate;
    if (lane == j) {
      chosen_id = best_id;
      chosen_prob = best;
    }
    chosen_total += best;
  }
  if (lane < options.top_k) {
    const int64_t out = int64_t{row} * options.top_k + lane;
    expert_ids[out] = chosen_id;
    weights[out] = chosen_prob / chosen_total;
  }
}

}  // namespace

cudaError_t SelectExperts(const float* logits, int n,
                          const GatingOptions& options, int32_t* expert_ids,
                          float* weights, cudaStream_t stream) {
  if (n < 0 || options.experts < 1 || options.experts > kMaxGatingExperts ||
      options.top_k < 1 || options.top_k > options.experts ||
      options.top_k > kMaxGatingTopK ||
      (options.use_logits_norm && !(options.gate_norm_std > 0.0f))) {
    return cudaErrorInvalidValue;
  }
  if (n == 0) return cudaSuccess;
  if (logits == nullptr || expert_ids == nullptr || weights == nullptr) {
    return cudaErrorInvalidValue;
  }
  const int blocks = (n - 1) / kWarps + 1;
  return LaunchError([&] {
    SelectExpertsKernel<<<blocks, kThreads, 0, stream>>>(logits, n, options,
                                                         expert_ids, weights);
  });
}

}  // namespace moe::cuda

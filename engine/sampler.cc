#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"

namespace moe {

absl::Status ValidateSamplingParams(const SamplingParams& params) {
  if (!(params.temperature >= 0.0f) || !std::isfinite(params.temperature)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "temperature must be a finite number >= 0, got ", params.temperature));
  }
  if (params.top_k < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("top_k must be >= 0 (0: no limit), got ", params.top_k));
  }
  if (!(params.top_p > 0.0f && params.top_p <= 1.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("top_p must be in (0, 1], got ", params.top_p));
  }
  return absl::OkStatus();
}

Sampler::Sampler(const SamplingParams& params)
    : params_(params),
      generator_(params.seed.has_value() ? *params.seed
                                         : std::random_device()()) {}

int32_t Sampler::Sample(std::span<const float> logits) {
  const int32_t vocab = static_cast<int32_t>(logits.size());
  if (params_.temperature == 0.0f) {
    return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) -
                                logits.begin());
  }
  std::vector<int32_t> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  const int32_t keep =
      params_.top_k > 0 ? std::min(params_.top_k, vocab) : vocab;
  auto by_logit = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  std::partial_sort(order.begin(), order.begin() + keep, order.end(), by_logit);
  order.resize(keep);
  // Softmax of logits / temperature over the kept tokens, in double.
  std::vector<double> probs(keep);
  const double max = logits[order[0]];
  double total = 0.0;
  for (int32_t i = 0; i < keep; ++i) {
    probs[i] = std::exp((logits[order[i]] - max) / params_.temperature);
    total += probs[i];
  }
  int32_t nucleus = keep;
  if (params_.top_p < 1.0f) {
    double mass = 0.0;
    for (int32_t i = 0; i < keep; ++i) {
      mass += probs[i] / total;
      if (mass >= params_.top_p) {
        nucleus = i + 1;
        break;
      }
    }
  }
  std::discrete_distribution<int32_t> pick(probs.begin(),
                                           probs.begin() + nucleus);
  return order[pick(generator_)];
}

}  // namespace moe

#ifndef MOE_ENGINE_SAMPLER_H_
#define MOE_ENGINE_SAMPLER_H_

#include <cstdint>
#include <optional>
#include <random>
#include <span>

#include "absl/status/status.h"

namespace moe {

struct SamplingParams {
  float temperature = 0.0f;      // 0: greedy
  int top_k = 0;                 // 0: no limit
  float top_p = 1.0f;            // in (0, 1]
  std::optional<uint64_t> seed;  // unset: a random seed
};

// INVALID_ARGUMENT naming the field when a parameter is out of range.
absl::Status ValidateSamplingParams(const SamplingParams& params);

// Picks the next token from logits. In the order users know from vLLM and HF
// transformers: divide by the temperature, keep the top_k most likely, keep
// the smallest set whose probability reaches top_p, sample. Greedy picks the
// largest logit (the lowest id among ties). One sampler per sequence: its
// generator makes a seeded sequence reproducible.
class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);

  int32_t Sample(std::span<const float> logits);

 private:
  SamplingParams params_;
  std::mt19937_64 generator_;
};

}  // namespace moe

#endif  // MOE_ENGINE_SAMPLER_H_

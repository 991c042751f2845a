#ifndef MOE_ENGINE_GENERATION_H_
#define MOE_ENGINE_GENERATION_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model_runner.h"
#include "engine/sampler.h"

namespace moe {

struct GenerationRequest {
  std::vector<int32_t>
      prompt;  // token ids, BOS included when the model wants it
  int max_tokens = 16;
  SamplingParams sampling;
  bool stop_on_eos = true;
};

enum class FinishReason { kLength, kEos };

struct GenerationResult {
  std::vector<int32_t>
      tokens;  // the new tokens, EOS included when it ended them
  FinishReason finish_reason = FinishReason::kLength;
  double prefill_seconds = 0.0;
  double decode_seconds = 0.0;  // for tokens after the first
};

// INVALID_ARGUMENT naming the field when the request cannot run on a model of
// `config` (empty or too long prompt, max_tokens < 1, bad sampling).
absl::Status ValidateGenerationRequest(const ModelConfig& config,
                                       const GenerationRequest& request);

// INTERNAL when the logits hold a NaN or an infinity: corrupt weights
// surface as an error rather than as undefined sampling.
absl::Status CheckFiniteLogits(std::span<const float> logits, size_t step);

// Whether a sequence ends after `tokens` (its new tokens, the last one just
// sampled), with `length` positions now in its context.
std::optional<FinishReason> FinishAfter(const ModelConfig& config,
                                        const GenerationRequest& request,
                                        const std::vector<int32_t>& tokens,
                                        int64_t length);

// Generates one sequence: prefill the prompt, then decode one token at a time
// until max_tokens, EOS (when stop_on_eos) or the context length. Calls
// on_token with each new token as soon as it is sampled; an error from it
// (the consumer failed or went away) stops generation and is returned.
absl::StatusOr<GenerationResult> Generate(
    ModelRunner& runner, const GenerationRequest& request,
    const std::function<absl::Status(int32_t)>& on_token = nullptr);

}  // namespace moe

#endif  // MOE_ENGINE_GENERATION_H_

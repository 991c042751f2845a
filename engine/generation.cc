#include "engine/generation.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"

namespace moe {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

}  // namespace

absl::Status CheckFiniteLogits(std::span<const float> logits, size_t step) {
  for (float logit : logits) {
    if (!std::isfinite(logit)) {
      return absl::InternalError(
          absl::StrCat("the model produced a non-finite logit at step ", step,
                       "; the checkpoint's weights may be corrupt"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateGenerationRequest(const ModelConfig& config,
                                       const GenerationRequest& request) {
  if (request.prompt.empty()) {
    return absl::InvalidArgumentError("prompt: no tokens");
  }
  if (request.max_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_tokens must be >= 1, got ", request.max_tokens));
  }
  MOE_RETURN_IF_ERROR(ValidateSamplingParams(request.sampling));
  if (static_cast<int64_t>(request.prompt.size()) >=
      config.max_position_embeddings) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt: ", request.prompt.size(),
                     " tokens leave no room in the context of ",
                     config.max_position_embeddings));
  }
  for (size_t i = 0; i < request.prompt.size(); ++i) {
    if (request.prompt[i] < 0 || request.prompt[i] >= config.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("prompt: token id ", request.prompt[i], " at index ", i,
                       " is outside [0, ", config.vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

std::optional<FinishReason> FinishAfter(const ModelConfig& config,
                                        const GenerationRequest& request,
                                        const std::vector<int32_t>& tokens,
                                        int64_t length) {
  const bool eos =
      request.stop_on_eos &&
      std::find(config.eos_token_ids.begin(), config.eos_token_ids.end(),
                tokens.back()) != config.eos_token_ids.end();
  if (eos) return FinishReason::kEos;
  if (static_cast<int>(tokens.size()) >= request.max_tokens ||
      length >= config.max_position_embeddings) {
    return FinishReason::kLength;
  }
  return std::nullopt;
}

absl::StatusOr<GenerationResult> Generate(
    ModelRunner& runner, const GenerationRequest& request,
    const std::function<absl::Status(int32_t)>& on_token) {
  const ModelConfig& config = runner.config();
  MOE_RETURN_IF_ERROR(ValidateGenerationRequest(config, request));
  Sampler sampler(request.sampling);
  SequenceKvCache cache = runner.NewCache();
  GenerationResult result;
  auto start = std::chrono::steady_clock::now();
  MOE_ASSIGN_OR_RETURN(
      std::vector<float> logits,
      runner.Forward(request.prompt, cache, LogitsFor::kLastToken));
  result.prefill_seconds = SecondsSince(start);
  start = std::chrono::steady_clock::now();
  while (true) {
    MOE_RETURN_IF_ERROR(CheckFiniteLogits(logits, result.tokens.size()));
    const int32_t token = sampler.Sample(logits);
    result.tokens.push_back(token);
    if (on_token) MOE_RETURN_IF_ERROR(on_token(token));
    if (const std::optional<FinishReason> finish =
            FinishAfter(config, request, result.tokens, cache.length())) {
      result.finish_reason = *finish;
      break;
    }
    const int32_t next[] = {token};
    MOE_ASSIGN_OR_RETURN(logits,
                         runner.Forward(next, cache, LogitsFor::kLastToken));
  }
  result.decode_seconds = SecondsSince(start);
  return result;
}

}  // namespace moe

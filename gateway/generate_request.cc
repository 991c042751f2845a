#include "gateway/generate_request.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"

namespace moe {
namespace {

constexpr int kMaxStops = 8;
constexpr size_t kMaxStopBytes = 256;
constexpr size_t kMaxRequestIdBytes = 128;

absl::Status Invalid(const std::string& message) {
  return absl::InvalidArgumentError(message);
}

absl::StatusOr<std::vector<int32_t>> PromptIds(
    const v1::GenerateRequest& request, const ModelConfig& config,
    const Tokenizer& tokenizer, size_t max_prompt_bytes) {
  switch (request.prompt_case()) {
    case v1::GenerateRequest::kText: {
      if (request.text().empty()) return Invalid("text: the prompt is empty");
      MOE_RETURN_IF_ERROR(
          CheckPromptBytes("text", request.text(), max_prompt_bytes));
      absl::StatusOr<std::vector<int32_t>> ids =
          tokenizer.EncodePrompt(request.text());
      if (!ids.ok()) {
        return Invalid(absl::StrCat("text: ", ids.status().message()));
      }
      return ids;
    }
    case v1::GenerateRequest::kTokenIds: {
      const auto& ids = request.token_ids().ids();
      if (ids.empty()) return Invalid("token_ids: the prompt is empty");
      for (int i = 0; i < ids.size(); ++i) {
        if (ids[i] < 0 || ids[i] >= config.vocab_size) {
          return Invalid(absl::StrCat("token_ids: id ", ids[i], " at index ", i,
                                      " is outside [0, ", config.vocab_size,
                                      ")"));
        }
      }
      return std::vector<int32_t>(ids.begin(), ids.end());
    }
    case v1::GenerateRequest::PROMPT_NOT_SET:
      break;
  }
  return Invalid("prompt: set text or token_ids");
}

absl::Status CheckStops(const v1::GenerateRequest& request) {
  if (request.stop_size() > kMaxStops) {
    return Invalid(absl::StrCat("stop: ", request.stop_size(),
                                " stop strings, at most ", kMaxStops));
  }
  for (int i = 0; i < request.stop_size(); ++i) {
    const std::string& stop = request.stop(i);
    if (stop.empty() || stop.size() > kMaxStopBytes) {
      return Invalid(absl::StrCat("stop: string ", i, " has ", stop.size(),
                                  " bytes; it must have 1 to ", kMaxStopBytes));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckSampling(const v1::GenerateRequest& request) {
  // Written so that NaN fails each test.
  if (request.has_temperature() &&
      !(request.temperature() >= 0 && std::isfinite(request.temperature()))) {
    return Invalid(
        absl::StrCat("temperature: must be a finite number >= 0, "
                     "got ",
                     request.temperature()));
  }
  if (request.has_top_p() && !(request.top_p() > 0 && request.top_p() <= 1)) {
    return Invalid(
        absl::StrCat("top_p: must be in (0, 1], got ", request.top_p()));
  }
  if (request.top_k() < 0) {
    return Invalid(absl::StrCat("top_k: must be >= 0 (0: all tokens), got ",
                                request.top_k()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckPromptBytes(std::string_view field, std::string_view text,
                              size_t max_bytes) {
  if (text.size() <= max_bytes) return absl::OkStatus();
  return Invalid(absl::StrCat(absl::string_view(field.data(), field.size()),
                              ": ", text.size(),
                              " bytes, more than the gateway takes (",
                              max_bytes, ", --max-prompt-bytes)"));
}

size_t DefaultMaxPromptBytes(const ModelConfig& config) {
  return 16 * static_cast<size_t>(config.max_position_embeddings);
}

absl::StatusOr<v1::RouterGenerateRequest> ToRouterRequest(
    const v1::GenerateRequest& request, const ModelConfig& config,
    const Tokenizer& tokenizer, size_t max_prompt_bytes) {
  if (request.request_id().size() > kMaxRequestIdBytes) {
    return Invalid(absl::StrCat("request_id: ", request.request_id().size(),
                                " bytes, at most ", kMaxRequestIdBytes));
  }
  MOE_RETURN_IF_ERROR(CheckSampling(request));
  MOE_RETURN_IF_ERROR(CheckStops(request));
  if (request.max_tokens() < 1) {
    return Invalid(
        absl::StrCat("max_tokens: must be >= 1, got ", request.max_tokens()));
  }
  MOE_ASSIGN_OR_RETURN(const std::vector<int32_t> prompt,
                       PromptIds(request, config, tokenizer, max_prompt_bytes));
  const int64_t context = config.max_position_embeddings;
  if (static_cast<int64_t>(prompt.size()) >= context) {
    return Invalid(absl::StrCat("prompt: ", prompt.size(),
                                " tokens leave no room in the context of ",
                                context));
  }
  if (static_cast<int64_t>(prompt.size()) + request.max_tokens() > context) {
    return Invalid(absl::StrCat("max_tokens: ", prompt.size(),
                                " prompt tokens + ", request.max_tokens(),
                                " exceed the context of ", context));
  }

  v1::RouterGenerateRequest router;
  router.set_request_id(request.request_id());
  router.mutable_prompt_token_ids()->Add(prompt.begin(), prompt.end());
  router.set_max_tokens(request.max_tokens());
  router.set_ignore_eos(request.ignore_eos());
  v1::SamplingParameters& sampling = *router.mutable_sampling();
  sampling.set_temperature(request.has_temperature() ? request.temperature()
                                                     : 1.0f);
  sampling.set_top_p(request.has_top_p() ? request.top_p() : 1.0f);
  sampling.set_top_k(request.top_k());
  // The router draws a random seed for negative ones; every seed a client
  // gives must be reproducible, so the sign bit is dropped.
  sampling.set_seed(request.has_seed()
                        ? request.seed() & std::numeric_limits<int64_t>::max()
                        : -1);
  return router;
}

}  // namespace moe

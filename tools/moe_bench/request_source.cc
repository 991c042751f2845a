#include "tools/moe_bench/request_source.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace moe {

absl::StatusOr<RequestSource> RequestSource::Create(
    LengthDistribution prompt_tokens, LengthDistribution output_tokens,
    const ModelLimits& limits, uint64_t seed) {
  const int64_t longest =
      static_cast<int64_t>(prompt_tokens.max) + output_tokens.max;
  if (longest > limits.context_length) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--prompt-tokens ", prompt_tokens.ToString(), " and --output-tokens ",
        output_tokens.ToString(), " reach ", prompt_tokens.max, " + ",
        output_tokens.max, " = ", longest,
        " tokens, more than the model's context length of ",
        limits.context_length));
  }
  const int32_t lowest = std::min(kLowestPromptTokenId, limits.vocab_size / 2);
  int32_t usable = limits.vocab_size - lowest;
  for (int32_t id : absl::flat_hash_set<int32_t>(
           limits.special_token_ids.begin(), limits.special_token_ids.end())) {
    if (id >= lowest && id < limits.vocab_size) --usable;
  }
  if (usable < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("the model's vocabulary of ", limits.vocab_size,
                     " tokens leaves no ordinary token id for prompts"));
  }
  return RequestSource(prompt_tokens, output_tokens, limits, lowest, seed);
}

RequestSource::RequestSource(LengthDistribution prompt_tokens,
                             LengthDistribution output_tokens,
                             const ModelLimits& limits, int32_t lowest_token_id,
                             uint64_t seed)
    : prompt_tokens_(prompt_tokens),
      output_tokens_(output_tokens),
      vocab_size_(limits.vocab_size),
      lowest_token_id_(lowest_token_id),
      special_token_ids_(limits.special_token_ids.begin(),
                         limits.special_token_ids.end()),
      rng_(seed) {}

int32_t RequestSource::DrawTokenId() {
  std::uniform_int_distribution<int32_t> ids(lowest_token_id_, vocab_size_ - 1);
  // Create() checked that an ordinary id exists, so this ends; special ids
  // are a handful among thousands, so it rarely loops at all.
  while (true) {
    const int32_t id = ids(rng_);
    if (!special_token_ids_.contains(id)) return id;
  }
}

v1::GenerateRequest RequestSource::Next() {
  v1::GenerateRequest request;
  const int32_t prompt_length = prompt_tokens_.Sample(rng_);
  request.set_max_tokens(output_tokens_.Sample(rng_));
  v1::TokenIds* ids = request.mutable_token_ids();
  ids->mutable_ids()->Reserve(prompt_length);
  for (int32_t i = 0; i < prompt_length; ++i) ids->add_ids(DrawTokenId());
  request.set_temperature(0);
  request.set_ignore_eos(true);
  return request;
}

}  // namespace moe

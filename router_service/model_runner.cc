#include "router_service/model_runner.h"

#include "absl/strings/str_cat.h"

namespace moe {

absl::StatusOr<std::vector<float>> ModelRunner::Forward(
    std::span<const int32_t> tokens, SequenceKvCache& cache, LogitsFor which) {
  const SequenceStep step[] = {{tokens, &cache, which}};
  return std::move(ForwardBatch(step)[0]);
}

absl::Status ModelRunner::CheckStep(const SequenceStep& step) const {
  const ModelConfig& c = config();
  const int64_t n = static_cast<int64_t>(step.tokens.size());
  const int64_t start = step.cache->length();
  if (n == 0) return absl::InvalidArgumentError("no tokens to run");
  if (start + n > c.max_position_embeddings) {
    return absl::OutOfRangeError(absl::StrCat(
        "sequence of ", start + n, " tokens exceeds the context length ",
        c.max_position_embeddings));
  }
  for (int64_t i = 0; i < n; ++i) {
    if (step.tokens[i] < 0 || step.tokens[i] >= c.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", step.tokens[i], " at index ", i,
                       " is outside [0, ", c.vocab_size, ")"));
    }
  }
  return step.cache->Reserve(start + n);
}

}  // namespace moe

#ifndef MOE_TOOLS_MOE_BENCH_REQUEST_SOURCE_H_
#define MOE_TOOLS_MOE_BENCH_REQUEST_SOURCE_H_

#include <cstdint>
#include <random>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "moe/v1/inference.pb.h"
#include "tools/moe_bench/length_distribution.h"

namespace moe {

// What moe-bench needs to know of the served model (from GetModelInfo).
struct ModelLimits {
  int32_t vocab_size = 0;
  int32_t context_length = 0;
  // BOS and EOS ids: never drawn into prompts, so a prompt holds no special
  // token whatever the tokenizer.
  std::vector<int32_t> special_token_ids;
};

// Prompt ids are drawn from [min(kLowestPromptTokenId, vocab_size / 2),
// vocab_size): the lowest ids are where tokenizers put their special and
// control tokens (unk, bos, eos, pad, byte fallbacks).
inline constexpr int32_t kLowestPromptTokenId = 100;

// Makes moe-bench's requests: seeded random token-id prompts (exact lengths:
// no tokenizer in between), greedy (temperature 0) and ignore_eos, so that
// every request generates exactly the output length it was given. The k-th
// request depends only on the seed and k. Not thread-safe.
class RequestSource {
 public:
  // Fails, naming --prompt-tokens and --output-tokens, when the longest prompt
  // plus the longest output does not fit the model's context length.
  static absl::StatusOr<RequestSource> Create(LengthDistribution prompt_tokens,
                                              LengthDistribution output_tokens,
                                              const ModelLimits& limits,
                                              uint64_t seed);

  v1::GenerateRequest Next();

  int32_t lowest_token_id() const { return lowest_token_id_; }

 private:
  RequestSource(LengthDistribution prompt_tokens,
                LengthDistribution output_tokens, const ModelLimits& limits,
                int32_t lowest_token_id, uint64_t seed);

  int32_t DrawTokenId();

  LengthDistribution prompt_tokens_;
  LengthDistribution output_tokens_;
  int32_t vocab_size_;
  int32_t lowest_token_id_;
  absl::flat_hash_set<int32_t> special_token_ids_;
  std::mt19937_64 rng_;
};

}  // namespace moe

#endif  // MOE_TOOLS_MOE_BENCH_REQUEST_SOURCE_H_

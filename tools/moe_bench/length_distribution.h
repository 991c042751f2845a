#ifndef MOE_TOOLS_MOE_BENCH_LENGTH_DISTRIBUTION_H_
#define MOE_TOOLS_MOE_BENCH_LENGTH_DISTRIBUTION_H_

#include <cstdint>
#include <random>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace moe {

// A distribution of token counts for moe-bench's --prompt-tokens and
// --output-tokens: a fixed N (min == max) or uniform over [min, max].
struct LengthDistribution {
  int32_t min = 1;
  int32_t max = 1;

  // "N" or "uniform:MIN:MAX", as the flag is written.
  std::string ToString() const;
  // Draws a length; uniform over the integers of [min, max].
  int32_t Sample(std::mt19937_64& rng) const;
};

// Parses "N" or "uniform:MIN:MAX" with 1 <= MIN <= MAX. Errors are
// INVALID_ARGUMENT and start with `flag` (e.g. "--prompt-tokens") so the user
// knows which flag to fix.
absl::StatusOr<LengthDistribution> ParseLengthDistribution(
    absl::string_view text, absl::string_view flag);

}  // namespace moe

#endif  // MOE_TOOLS_MOE_BENCH_LENGTH_DISTRIBUTION_H_

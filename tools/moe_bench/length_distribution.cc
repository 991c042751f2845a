#include "tools/moe_bench/length_distribution.h"

#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace moe {
namespace {

constexpr absl::string_view kUniformPrefix = "uniform:";

absl::Status Invalid(absl::string_view flag, absl::string_view text,
                     absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat(flag, ": \"", text, "\" ", why,
                   " (expected N or uniform:MIN:MAX with 1 <= MIN <= MAX)"));
}

}  // namespace

std::string LengthDistribution::ToString() const {
  if (min == max) return absl::StrCat(min);
  return absl::StrCat(kUniformPrefix, min, ":", max);
}

int32_t LengthDistribution::Sample(std::mt19937_64& rng) const {
  if (min == max) return min;  // draws nothing: fixed lengths keep the stream
  return std::uniform_int_distribution<int32_t>(min, max)(rng);
}

absl::StatusOr<LengthDistribution> ParseLengthDistribution(
    absl::string_view text, absl::string_view flag) {
  LengthDistribution distribution;
  if (absl::StartsWith(text, kUniformPrefix)) {
    const std::vector<absl::string_view> bounds =
        absl::StrSplit(text.substr(kUniformPrefix.size()), ':');
    if (bounds.size() != 2 || !absl::SimpleAtoi(bounds[0], &distribution.min) ||
        !absl::SimpleAtoi(bounds[1], &distribution.max)) {
      return Invalid(flag, text, "is not uniform:MIN:MAX with integers");
    }
    if (distribution.min < 1) return Invalid(flag, text, "has MIN below 1");
    if (distribution.min > distribution.max) {
      return Invalid(flag, text, "has MIN above MAX");
    }
    return distribution;
  }
  if (!absl::SimpleAtoi(text, &distribution.min)) {
    return Invalid(flag, text, "is not a token count");
  }
  if (distribution.min < 1) return Invalid(flag, text, "is below 1");
  distribution.max = distribution.min;
  return distribution;
}

}  // namespace moe

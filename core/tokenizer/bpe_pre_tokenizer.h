#ifndef MOE_CORE_TOKENIZER_BPE_PRE_TOKENIZER_H_
#define MOE_CORE_TOKENIZER_BPE_PRE_TOKENIZER_H_

#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "core/tokenizer/regex.h"
#include "core/tokenizer/tokenizer_json.h"

namespace moe {

// The "pre_tokenizer" of a byte-level BPE `tokenizer.json`: how text is cut
// into words before BPE runs on each, as Hugging Face tokenizers does it, for
// the types byte-level models use: ByteLevel, Split, Digits and a Sequence of
// them.
class PreTokenizer {
 public:
  // How a split treats the matches of its pattern (tokenizers'
  // SplitDelimiterBehavior).
  enum class Behavior {
    kRemoved,             // dropped
    kIsolated,            // words of their own
    kMergedWithPrevious,  // appended to the word before
    kMergedWithNext,      // prepended to the word after
    kContiguous,          // adjacent matches form one word
  };
  // Split, and Digits (a split on \p{N}).
  struct SplitStep {
    Regex regex;
    Behavior behavior;
    bool invert;  // the pattern matches the words, not the delimiters
  };
  // An optional space before each piece, an optional split with GPT-2's
  // pattern, then every word spelled in the byte-level alphabet.
  struct ByteLevelStep {
    bool add_prefix_space;
    std::optional<SplitStep> split;
  };
  using Step = std::variant<SplitStep, ByteLevelStep>;

  // `json`: the "pre_tokenizer" member. Errors name unsupported types and
  // values.
  static absl::StatusOr<PreTokenizer> FromJson(const TokenizerJson& json);

  // The words of `text` (valid UTF-8), none empty.
  absl::StatusOr<std::vector<std::string>> Split(std::string_view text) const;

  // Whether the words come out in the byte-level alphabet.
  bool has_byte_level() const;

 private:
  explicit PreTokenizer(std::vector<Step> steps) : steps_(std::move(steps)) {}

  std::vector<Step> steps_;  // applied in order, each to every word so far
};

}  // namespace moe

#endif  // MOE_CORE_TOKENIZER_BPE_PRE_TOKENIZER_H_

#include "core/tokenizer/incremental_detokenizer.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "core/util/status_macros.h"

namespace moe {
namespace {

// U+FFFD, which SentencePiece emits for bytes that are not (yet) valid UTF-8.
constexpr char kReplacement[] = "\xEF\xBF\xBD";

// Context tokens kept before the first generated one: enough for the
// tokenizer to decide on a leading space.
constexpr size_t kContextTokens = 4;

}  // namespace

IncrementalDetokenizer::IncrementalDetokenizer(const Tokenizer& tokenizer,
                                               std::span<const int32_t> context)
    : tokenizer_(tokenizer),
      tokens_(context.end() - std::min(context.size(), kContextTokens),
              context.end()),
      read_offset_(tokens_.size()) {}

absl::StatusOr<std::string> IncrementalDetokenizer::Append(int32_t token) {
  tokens_.push_back(token);
  return Emit(/*final=*/false);
}

absl::StatusOr<std::string> IncrementalDetokenizer::Flush() {
  return Emit(/*final=*/true);
}

absl::StatusOr<std::string> IncrementalDetokenizer::Emit(bool final) {
  const std::span<const int32_t> all(tokens_);
  MOE_ASSIGN_OR_RETURN(const std::string before,
                       tokenizer_.Decode(all.subspan(
                           prefix_offset_, read_offset_ - prefix_offset_)));
  MOE_ASSIGN_OR_RETURN(const std::string text,
                       tokenizer_.Decode(all.subspan(prefix_offset_)));
  if (text.size() <= before.size() ||
      (!final && absl::EndsWith(text, kReplacement))) {
    return "";
  }
  prefix_offset_ = read_offset_;
  read_offset_ = tokens_.size();
  return text.substr(before.size());
}

}  // namespace moe

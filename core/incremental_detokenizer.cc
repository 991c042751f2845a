#include "core/incremental_detokenizer.h"

#include "absl/strings/match.h"
#include "core/status_macros.h"

namespace moe {
namespace {

// U+FFFD, which SentencePiece emits for bytes that are not (yet) valid UTF-8.
constexpr char kReplacement[] = "\xEF\xBF\xBD";

}  // namespace

absl::StatusOr<std::string> IncrementalDetokenizer::Append(int32_t token) {
  tokens_.push_back(token);
  MOE_ASSIGN_OR_RETURN(std::string text, tokenizer_.Decode(tokens_));
  if (absl::EndsWith(text, kReplacement) || text.size() <= emitted_) return "";
  std::string piece = text.substr(emitted_);
  emitted_ = text.size();
  return piece;
}

absl::StatusOr<std::string> IncrementalDetokenizer::Flush() {
  MOE_ASSIGN_OR_RETURN(std::string text, tokenizer_.Decode(tokens_));
  if (text.size() <= emitted_) return "";
  std::string piece = text.substr(emitted_);
  emitted_ = text.size();
  return piece;
}

}  // namespace moe

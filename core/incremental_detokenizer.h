#ifndef MOE_CORE_INCREMENTAL_DETOKENIZER_H_
#define MOE_CORE_INCREMENTAL_DETOKENIZER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/tokenizer.h"

namespace moe {

// Turns a stream of generated tokens into a stream of text pieces whose
// concatenation equals the detokenization of all tokens. Text is held back
// while the tail is an incomplete UTF-8 character (a byte-fallback piece
// waiting for the rest of its bytes), so no piece splits a character.
class IncrementalDetokenizer {
 public:
  explicit IncrementalDetokenizer(const Tokenizer& tokenizer)
      : tokenizer_(tokenizer) {}

  // The text that `token` completes; may be empty.
  absl::StatusOr<std::string> Append(int32_t token);
  // Whatever is still held back (at the end of the stream).
  absl::StatusOr<std::string> Flush();

 private:
  const Tokenizer& tokenizer_;
  std::vector<int32_t> tokens_;
  size_t emitted_ = 0;  // bytes of the full decode already returned
};

}  // namespace moe

#endif  // MOE_CORE_INCREMENTAL_DETOKENIZER_H_

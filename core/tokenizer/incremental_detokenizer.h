#ifndef MOE_CORE_TOKENIZER_INCREMENTAL_DETOKENIZER_H_
#define MOE_CORE_TOKENIZER_INCREMENTAL_DETOKENIZER_H_

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/tokenizer/tokenizer.h"

namespace moe {

// Turns a stream of generated tokens into a stream of text pieces. Each
// piece is the text the new tokens add to the detokenization of everything
// before them (so a word's leading space survives, as in the full decode),
// computed over a short window of recent tokens rather than the whole
// sequence. Text is held back while the tail is an incomplete UTF-8
// character (a byte-fallback piece waiting for the rest of its bytes), so no
// piece splits a character.
class IncrementalDetokenizer {
 public:
  // `context`: the prompt's ids, which shape the first pieces but are not
  // emitted.
  explicit IncrementalDetokenizer(const Tokenizer& tokenizer,
                                  std::span<const int32_t> context = {});

  // The text that `token` completes; may be empty.
  absl::StatusOr<std::string> Append(int32_t token);
  // Whatever is still held back (at the end of the stream).
  absl::StatusOr<std::string> Flush();

 private:
  absl::StatusOr<std::string> Emit(bool final);

  const Tokenizer& tokenizer_;
  std::vector<int32_t> tokens_;
  size_t prefix_offset_ = 0;  // start of the decode window
  size_t read_offset_ = 0;    // tokens up to here have been emitted
};

}  // namespace moe

#endif  // MOE_CORE_TOKENIZER_INCREMENTAL_DETOKENIZER_H_

#ifndef MOE_CORE_TOKENIZER_ADDED_TOKENS_H_
#define MOE_CORE_TOKENIZER_ADDED_TOKENS_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moe {

// The "added_tokens" of a `tokenizer.json` ("<|im_start|>", ...), which
// Hugging Face tokenizers cuts out of the text before anything else: first
// the tokens marked "normalized": false, then, in the text between those, the
// others (the same text here, where no normalizer is supported). Within a
// pass the leftmost match wins, and of those starting there the longest.
class AddedTokens {
 public:
  struct Token {
    std::string content;
    int32_t id;
    bool normalized;
  };
  // A token, or the text between tokens.
  struct Segment {
    std::string_view text;
    int32_t id;  // -1: text between tokens
  };

  // Tokens with empty content are never matched.
  explicit AddedTokens(std::vector<Token> tokens);

  // The segments of `text`, in order; text segments are never empty.
  std::vector<Segment> Split(std::string_view text) const;

 private:
  // For each first byte, indices into `tokens_` of the tokens of one pass
  // that start with it, longest first.
  using Index = std::array<std::vector<int>, 256>;

  void SplitPass(const Index& index, std::string_view text,
                 std::vector<Segment>* segments) const;

  std::vector<Token> tokens_;
  Index unnormalized_;
  Index normalized_;
};

}  // namespace moe

#endif  // MOE_CORE_TOKENIZER_ADDED_TOKENS_H_

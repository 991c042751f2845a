#ifndef MOE_CORE_TOKENIZER_BYTE_LEVEL_H_
#define MOE_CORE_TOKENIZER_BYTE_LEVEL_H_

#include <optional>
#include <string>
#include <string_view>

namespace moe {

// GPT-2's byte-level alphabet (`bytes_to_unicode`), in which byte-level BPE
// vocabularies are written: each of the 256 bytes is one printable character.
// Printable Latin-1 bytes stand for themselves; the other 68 (controls, space,
// DEL, NBSP, soft hyphen) become U+0100 onwards, in byte order, so a space is
// "Ġ" and a newline "Ċ".

// `bytes` spelled in the alphabet (UTF-8 encoded).
std::string BytesToByteLevel(std::string_view bytes);

// The bytes that `text` spells in the alphabet; nullopt when a character of
// `text` is outside it.
std::optional<std::string> ByteLevelToBytes(std::string_view text);

}  // namespace moe

#endif  // MOE_CORE_TOKENIZER_BYTE_LEVEL_H_

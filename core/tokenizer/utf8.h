#ifndef MOE_CORE_TOKENIZER_UTF8_H_
#define MOE_CORE_TOKENIZER_UTF8_H_

#include <string>
#include <string_view>

namespace moe {

// `bytes` with each ill-formed UTF-8 sequence replaced by U+FFFD, one per
// maximal subpart (Unicode 15, section 3.9): exactly what Python's
// `bytes.decode("utf-8", errors="replace")` and Rust's
// `String::from_utf8_lossy` give. Well-formed input comes back unchanged.
std::string ReplaceInvalidUtf8(std::string_view bytes);

// Whether `bytes` is well-formed UTF-8 (no overlong forms, surrogates or
// code points past U+10FFFF).
bool IsValidUtf8(std::string_view bytes);

// The length of the character that `lead` starts in well-formed UTF-8.
inline int Utf8CharLength(unsigned char lead) {
  return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

}  // namespace moe

#endif  // MOE_CORE_TOKENIZER_UTF8_H_

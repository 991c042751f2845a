#include "core/tokenizer/utf8.h"

namespace moe {
namespace {

constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD

// The length of the well-formed character at the start of `bytes` (not
// empty), or minus the length of the maximal subpart to replace: the lead
// byte and the continuation bytes that could still have been part of a
// character.
int CharLengthOrMinusSubpart(std::string_view bytes) {
  const unsigned char lead = bytes[0];
  if (lead < 0x80) return 1;
  int length = 0;
  // The range of the second byte; narrower after E0, ED, F0 and F4, which
  // would otherwise allow overlong forms, surrogates or code points past
  // U+10FFFF.
  unsigned char low = 0x80;
  unsigned char high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;
  } else {
    return -1;
  }
  for (int k = 1; k < length; ++k) {
    if (static_cast<size_t>(k) >= bytes.size()) return -k;
    const unsigned char next = bytes[k];
    if (next < low || next > high) return -k;
    low = 0x80;
    high = 0xBF;
  }
  return length;
}

}  // namespace

bool IsValidUtf8(std::string_view bytes) {
  size_t i = 0;
  while (i < bytes.size()) {
    const int length = CharLengthOrMinusSubpart(bytes.substr(i));
    if (length <= 0) return false;
    i += length;
  }
  return true;
}

std::string ReplaceInvalidUtf8(std::string_view bytes) {
  std::string text;
  text.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    const int length = CharLengthOrMinusSubpart(bytes.substr(i));
    if (length > 0) {
      text.append(bytes.substr(i, length));
      i += length;
    } else {
      text += kReplacement;
      i += -length;
    }
  }
  return text;
}

}  // namespace moe

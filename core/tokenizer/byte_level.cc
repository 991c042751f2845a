#include "core/tokenizer/byte_level.h"

#include <array>
#include <cstdint>

namespace moe {
namespace {

// One past the largest code point of the alphabet: 256 + 68.
constexpr int kAlphabetEnd = 0x144;

constexpr std::array<uint16_t, 256> MakeByteToCodePoint() {
  std::array<uint16_t, 256> code_points{};
  uint16_t next = 256;
  for (int byte = 0; byte < 256; ++byte) {
    const bool printable = (byte >= '!' && byte <= '~') ||
                           (byte >= 0xA1 && byte <= 0xAC) ||
                           (byte >= 0xAE && byte <= 0xFF);
    code_points[byte] = printable ? byte : next++;
  }
  return code_points;
}

constexpr std::array<uint16_t, 256> kByteToCodePoint = MakeByteToCodePoint();

// Code point to byte; -1 outside the alphabet.
constexpr std::array<int16_t, kAlphabetEnd> MakeCodePointToByte() {
  std::array<int16_t, kAlphabetEnd> bytes{};
  bytes.fill(-1);
  for (int byte = 0; byte < 256; ++byte) bytes[kByteToCodePoint[byte]] = byte;
  return bytes;
}

constexpr std::array<int16_t, kAlphabetEnd> kCodePointToByte =
    MakeCodePointToByte();

}  // namespace

std::string BytesToByteLevel(std::string_view bytes) {
  std::string text;
  text.reserve(2 * bytes.size());
  for (const char byte : bytes) {
    const uint16_t code_point = kByteToCodePoint[static_cast<uint8_t>(byte)];
    if (code_point < 0x80) {
      text += static_cast<char>(code_point);
    } else {  // all below U+0800: two bytes of UTF-8
      text += static_cast<char>(0xC0 | (code_point >> 6));
      text += static_cast<char>(0x80 | (code_point & 0x3F));
    }
  }
  return text;
}

std::optional<std::string> ByteLevelToBytes(std::string_view text) {
  std::string bytes;
  bytes.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const uint8_t lead = text[i];
    int code_point = lead;
    if (lead >= 0x80) {
      // The alphabet has no character of three or more bytes.
      if ((lead & 0xE0) != 0xC0 || i + 1 >= text.size()) return std::nullopt;
      code_point = ((lead & 0x1F) << 6) | (text[i + 1] & 0x3F);
      ++i;
    }
    ++i;
    if (code_point >= kAlphabetEnd || kCodePointToByte[code_point] < 0) {
      return std::nullopt;
    }
    bytes += static_cast<char>(kCodePointToByte[code_point]);
  }
  return bytes;
}

}  // namespace moe

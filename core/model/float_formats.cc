#include "core/model/float_formats.h"

#include <bit>
#include <cmath>
#include <cstring>

namespace moe {

float Fp8E4M3ToFloat(uint8_t code) {
  const bool negative = (code & 0x80) != 0;
  const int exponent = (code >> 3) & 0xF;
  const int mantissa = code & 0x7;
  float magnitude;
  if (exponent == 0xF && mantissa == 0x7) {
    magnitude = std::nanf("");
  } else if (exponent == 0) {
    magnitude = std::ldexp(static_cast<float>(mantissa), -9);  // 0.mmm * 2^-6
  } else {
    magnitude = std::ldexp(static_cast<float>(8 + mantissa), exponent - 10);
  }
  return negative ? -magnitude : magnitude;
}

uint8_t FloatToFp8E4M3(float value) {
  // Bit arithmetic on the float32 encoding: quantizing a checkpoint converts
  // billions of values.
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  const uint8_t sign = static_cast<uint8_t>((bits >> 24) & 0x80);
  const uint32_t magnitude = bits & 0x7FFFFFFF;
  if (magnitude > 0x7F800000) return sign | 0x7F;  // NaN
  if (magnitude >= std::bit_cast<uint32_t>(kFp8E4M3Max)) {
    return sign | 0x7E;  // saturate (and inf)
  }
  constexpr uint32_t kMinNormal = 0x3C800000;  // 2^-6
  if (magnitude >= kMinNormal) {
    // Round the 23 mantissa bits to 3, half to even; a carry moves into the
    // exponent as it should. Below 448 the result stays at most 448.
    const uint32_t rounded = magnitude + 0x7FFFF + ((magnitude >> 20) & 1);
    const uint32_t exponent = (rounded >> 23) - 127 + 7;
    return sign | static_cast<uint8_t>((exponent << 3) | ((rounded >> 20) & 7));
  }
  // Subnormal: multiples of 2^-9 (exact in float32, so rint rounds half to
  // even); 8 steps is code 0x08, the smallest normal.
  const float steps = std::nearbyint(std::bit_cast<float>(magnitude) * 512.0f);
  return sign | static_cast<uint8_t>(steps);
}

float Bf16ToFloat(uint16_t bits) {
  return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16);
}

uint16_t FloatToBf16(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  if (std::isnan(value)) return static_cast<uint16_t>((bits >> 16) | 0x40);
  const uint32_t rounding = 0x7FFF + ((bits >> 16) & 1);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

float F16ToFloat(uint16_t bits) {
  const bool negative = (bits & 0x8000) != 0;
  const int exponent = (bits >> 10) & 0x1F;
  const int mantissa = bits & 0x3FF;
  float magnitude;
  if (exponent == 0x1F) {
    magnitude = mantissa == 0 ? INFINITY : std::nanf("");
  } else if (exponent == 0) {
    magnitude = std::ldexp(static_cast<float>(mantissa), -24);
  } else {
    magnitude = std::ldexp(static_cast<float>(1024 + mantissa), exponent - 25);
  }
  return negative ? -magnitude : magnitude;
}

uint16_t FloatToF16(float value) {
  const uint16_t sign = std::signbit(value) ? 0x8000 : 0;
  if (std::isnan(value)) return sign | 0x7E00;
  const float magnitude = std::fabs(value);
  if (magnitude >= 65520.0f) return sign | 0x7C00;  // rounds to infinity
  int exponent;
  std::frexp(magnitude, &exponent);
  const int unbiased = exponent - 1;
  const int quantum_exp = (unbiased < -14 ? -14 : unbiased) - 10;
  const float rounded =
      std::ldexp(std::rint(std::ldexp(magnitude, -quantum_exp)), quantum_exp);
  if (rounded == 0.0f) return sign;
  int r_exp;
  std::frexp(rounded, &r_exp);
  const int r_unbiased = r_exp - 1;
  if (r_unbiased < -14) {
    return sign | static_cast<uint16_t>(std::ldexp(rounded, 24));
  }
  const int mantissa =
      static_cast<int>(std::ldexp(rounded, 10 - r_unbiased)) - 1024;
  return sign | static_cast<uint16_t>(((r_unbiased + 15) << 10) | mantissa);
}

}  // namespace moe

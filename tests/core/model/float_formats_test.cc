// The scalar float conversions against formulas written here from the format
// specifications, and the SIMD matrix kernels' decoding against the scalar
// decoders.
#include "core/model/float_formats.h"

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "core/kernels/linear.h"
#include "core/model/dtype.h"
#include "core/util/thread_pool.h"
#include "gtest/gtest.h"

namespace moe {
namespace {

// OCP FP8 E4M3 (e4m3fn) from the spec: sign bit, 4 exponent bits with bias 7,
// 3 mantissa bits; exponent 0 is subnormal 0.mmm * 2^-6; S.1111.111 is NaN;
// there are no infinities.
double SpecFp8E4M3(uint8_t code) {
  const int sign = code >> 7;
  const int exponent = (code >> 3) & 0xF;
  const int mantissa = code & 0x7;
  if (exponent == 15 && mantissa == 7) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  double magnitude;
  if (exponent == 0) {
    magnitude = (mantissa / 8.0) * std::pow(2.0, -6);
  } else {
    magnitude = (1.0 + mantissa / 8.0) * std::pow(2.0, exponent - 7);
  }
  return sign ? -magnitude : magnitude;
}

bool IsFp8NaNCode(int code) { return (code & 0x7F) == 0x7F; }

// IEEE binary16: sign, 5 exponent bits with bias 15, 10 mantissa bits.
double SpecF16(uint16_t bits) {
  const int sign = bits >> 15;
  const int exponent = (bits >> 10) & 0x1F;
  const int mantissa = bits & 0x3FF;
  double magnitude;
  if (exponent == 31) {
    magnitude = mantissa == 0 ? std::numeric_limits<double>::infinity()
                              : std::numeric_limits<double>::quiet_NaN();
  } else if (exponent == 0) {
    magnitude = (mantissa / 1024.0) * std::pow(2.0, -14);
  } else {
    magnitude = (1.0 + mantissa / 1024.0) * std::pow(2.0, exponent - 15);
  }
  return sign ? -magnitude : magnitude;
}

// bfloat16 is the upper half of a float32.
float SpecBf16(uint16_t bits) {
  return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16);
}

bool IsF16NaNOrInf(uint16_t bits) { return ((bits >> 10) & 0x1F) == 0x1F; }
bool IsBf16NaNOrInf(uint16_t bits) { return ((bits >> 7) & 0xFF) == 0xFF; }

// ---------------------------------------------------------------- FP8 E4M3

TEST(Fp8E4M3Test, DecodesAll256CodesAsTheSpecSays) {
  for (int code = 0; code < 256; ++code) {
    SCOPED_TRACE(code);
    const float got = Fp8E4M3ToFloat(static_cast<uint8_t>(code));
    const double want = SpecFp8E4M3(static_cast<uint8_t>(code));
    if (IsFp8NaNCode(code)) {
      EXPECT_TRUE(std::isnan(got));
    } else {
      EXPECT_FALSE(std::isnan(got));
      EXPECT_FALSE(std::isinf(got));
      EXPECT_EQ(static_cast<double>(got), want);
      EXPECT_EQ(std::signbit(got), code >= 0x80);
    }
  }
}

TEST(Fp8E4M3Test, OnlyTwoNaNCodesAndMaxIs448) {
  int nan_codes = 0;
  float max_value = 0.0f;
  for (int code = 0; code < 256; ++code) {
    const float value = Fp8E4M3ToFloat(static_cast<uint8_t>(code));
    if (std::isnan(value)) {
      ++nan_codes;
    } else {
      max_value = std::max(max_value, std::fabs(value));
    }
  }
  EXPECT_EQ(nan_codes, 2);
  EXPECT_EQ(max_value, 448.0f);
  EXPECT_EQ(kFp8E4M3Max, 448.0f);
  EXPECT_EQ(Fp8E4M3ToFloat(0x7E), 448.0f);
  EXPECT_EQ(Fp8E4M3ToFloat(0xFE), -448.0f);
  EXPECT_EQ(Fp8E4M3ToFloat(0x01), std::ldexp(1.0f, -9));  // smallest subnormal
  EXPECT_EQ(Fp8E4M3ToFloat(0x08), std::ldexp(1.0f, -6));  // smallest normal
}

TEST(Fp8E4M3Test, EncodeRoundTripsEveryFiniteCode) {
  for (int code = 0; code < 256; ++code) {
    if (IsFp8NaNCode(code)) continue;
    SCOPED_TRACE(code);
    // Encode the spec value, not the decoder's output, so that a wrong
    // decoder paired with a matching encoder cannot pass.
    const float value =
        static_cast<float>(SpecFp8E4M3(static_cast<uint8_t>(code)));
    EXPECT_EQ(FloatToFp8E4M3(value), code);
  }
  EXPECT_EQ(FloatToFp8E4M3(-0.0f), 0x80);
  EXPECT_EQ(FloatToFp8E4M3(0.0f), 0x00);
}

// The non-negative finite codes 0x00..0x7E in increasing order of value.
std::vector<int> PositiveFp8CodesInOrder() {
  std::vector<int> codes;
  for (int code = 0; code <= 0x7E; ++code) codes.push_back(code);
  for (size_t i = 1; i < codes.size(); ++i) {
    EXPECT_LT(SpecFp8E4M3(codes[i - 1]), SpecFp8E4M3(codes[i]));
  }
  return codes;
}

TEST(Fp8E4M3Test, RoundsHalfToEvenBetweenEveryPairOfNeighbours) {
  // Covers the subnormals (0x00..0x07), the subnormal/normal boundary
  // (0x07 -> 0x08) and every binade boundary (mantissa 7 -> next exponent).
  const std::vector<int> codes = PositiveFp8CodesInOrder();
  for (size_t i = 0; i + 1 < codes.size(); ++i) {
    const int low = codes[i];
    const int high = codes[i + 1];
    SCOPED_TRACE(::testing::Message()
                 << "between 0x" << std::hex << low << " and 0x" << high);
    const double midpoint = (SpecFp8E4M3(low) + SpecFp8E4M3(high)) / 2;
    const float mid = static_cast<float>(midpoint);
    ASSERT_EQ(static_cast<double>(mid), midpoint);  // exact in float
    // Ties go to the even mantissa; the mantissa is the low 3 bits.
    const int even = (low & 1) == 0 ? low : high;
    EXPECT_EQ(FloatToFp8E4M3(mid), even);
    EXPECT_EQ(FloatToFp8E4M3(-mid), 0x80 | even);
    // Off the midpoint by one float ulp: the nearer code.
    EXPECT_EQ(FloatToFp8E4M3(std::nextafter(mid, 0.0f)), low);
    EXPECT_EQ(FloatToFp8E4M3(std::nextafter(mid, 1000.0f)), high);
    EXPECT_EQ(FloatToFp8E4M3(-std::nextafter(mid, 0.0f)), 0x80 | low);
    EXPECT_EQ(FloatToFp8E4M3(-std::nextafter(mid, 1000.0f)), 0x80 | high);
  }
}

TEST(Fp8E4M3Test, ExplicitMidpointCases) {
  // Half the smallest subnormal ties to zero (even).
  EXPECT_EQ(FloatToFp8E4M3(std::ldexp(1.0f, -10)), 0x00);
  // 1.5 * 2^-9 lies between codes 1 and 2: goes to 2.
  EXPECT_EQ(FloatToFp8E4M3(std::ldexp(3.0f, -10)), 0x02);
  // 2.5 * 2^-9 lies between codes 2 and 3: goes to 2.
  EXPECT_EQ(FloatToFp8E4M3(std::ldexp(5.0f, -10)), 0x02);
  // 7.5 * 2^-9, between the largest subnormal (0x07) and the smallest
  // normal 2^-6 (0x08): goes to 0x08.
  EXPECT_EQ(FloatToFp8E4M3(std::ldexp(15.0f, -10)), 0x08);
  // 1.0625 between 1.0 (0x38) and 1.125 (0x39): goes to 0x38.
  EXPECT_EQ(FloatToFp8E4M3(1.0625f), 0x38);
  // 432 between 416 (0x7D) and 448 (0x7E): goes to 0x7E.
  EXPECT_EQ(FloatToFp8E4M3(432.0f), 0x7E);
  // Below half the smallest subnormal: zero, sign kept.
  EXPECT_EQ(FloatToFp8E4M3(1e-10f), 0x00);
  EXPECT_EQ(FloatToFp8E4M3(-1e-10f), 0x80);
  EXPECT_EQ(FloatToFp8E4M3(std::numeric_limits<float>::denorm_min()), 0x00);
}

TEST(Fp8E4M3Test, SaturatesToPlusMinus448) {
  const float large[] = {448.0f,
                         449.0f,
                         464.0f,  // the midpoint to a would-be 480
                         480.0f,
                         1e4f,
                         std::numeric_limits<float>::max(),
                         std::numeric_limits<float>::infinity()};
  for (float value : large) {
    SCOPED_TRACE(value);
    EXPECT_EQ(FloatToFp8E4M3(value), 0x7E);
    EXPECT_EQ(FloatToFp8E4M3(-value), 0xFE);
    EXPECT_EQ(Fp8E4M3ToFloat(FloatToFp8E4M3(value)), 448.0f);
  }
}

TEST(Fp8E4M3Test, NaNEncodesToANaNCode) {
  const float nans[] = {std::numeric_limits<float>::quiet_NaN(),
                        -std::numeric_limits<float>::quiet_NaN(),
                        std::numeric_limits<float>::signaling_NaN()};
  for (float value : nans) {
    const uint8_t code = FloatToFp8E4M3(value);
    EXPECT_TRUE(IsFp8NaNCode(code)) << static_cast<int>(code);
    EXPECT_TRUE(std::isnan(Fp8E4M3ToFloat(code)));
  }
}

// ---------------------------------------------------------------- BF16

TEST(Bf16Test, DecodesEveryCodeAsTheUpperHalfOfAFloat) {
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    const uint16_t code = static_cast<uint16_t>(bits);
    const float got = Bf16ToFloat(code);
    const float want = SpecBf16(code);
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(got)) << bits;
    } else {
      ASSERT_EQ(std::bit_cast<uint32_t>(got), std::bit_cast<uint32_t>(want))
          << bits;
    }
  }
}

TEST(Bf16Test, RepresentableValuesEncodeExactly) {
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    const uint16_t code = static_cast<uint16_t>(bits);
    const float value = SpecBf16(code);
    if (std::isnan(value)) continue;  // infinities included
    ASSERT_EQ(FloatToBf16(value), code) << bits;
  }
}

TEST(Bf16Test, RoundsHalfToEvenAtEveryMidpoint) {
  // For each non-negative finite code c, the float halfway to c + 1 has the
  // bits (c << 16) | 0x8000. The last step (max finite to infinity) is the
  // IEEE overflow by rounding.
  for (uint32_t code = 0; code < 0x7F80; ++code) {
    const float mid = std::bit_cast<float>((code << 16) | 0x8000u);
    const uint16_t even =
        static_cast<uint16_t>((code & 1) == 0 ? code : code + 1);
    ASSERT_EQ(FloatToBf16(mid), even) << code;
    ASSERT_EQ(FloatToBf16(-mid), 0x8000 | even) << code;
    const float below = std::bit_cast<float>((code << 16) | 0x7FFFu);
    const float above = std::bit_cast<float>((code << 16) | 0x8001u);
    ASSERT_EQ(FloatToBf16(below), code) << code;
    ASSERT_EQ(FloatToBf16(above), code + 1) << code;
  }
  EXPECT_EQ(FloatToBf16(std::numeric_limits<float>::max()), 0x7F80);
}

TEST(Bf16Test, SpecialValues) {
  EXPECT_EQ(FloatToBf16(std::numeric_limits<float>::infinity()), 0x7F80);
  EXPECT_EQ(FloatToBf16(-std::numeric_limits<float>::infinity()), 0xFF80);
  EXPECT_EQ(FloatToBf16(-0.0f), 0x8000);
  EXPECT_EQ(FloatToBf16(1.0f), 0x3F80);
  EXPECT_TRUE(std::isnan(
      Bf16ToFloat(FloatToBf16(std::numeric_limits<float>::quiet_NaN()))));
  // A NaN whose payload lives only in the low 16 bits must not become inf.
  const float low_payload_nan = std::bit_cast<float>(0x7F800001u);
  ASSERT_TRUE(std::isnan(low_payload_nan));
  EXPECT_TRUE(std::isnan(Bf16ToFloat(FloatToBf16(low_payload_nan))));
}

// ---------------------------------------------------------------- F16

TEST(F16Test, DecodesEveryCodeAsTheSpecSays) {
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    const uint16_t code = static_cast<uint16_t>(bits);
    const float got = F16ToFloat(code);
    const double want = SpecF16(code);
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(got)) << bits;
    } else {
      ASSERT_EQ(static_cast<double>(got), want) << bits;
      ASSERT_EQ(std::signbit(got), bits >= 0x8000) << bits;
    }
  }
}

TEST(F16Test, RepresentableValuesEncodeExactly) {
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    const uint16_t code = static_cast<uint16_t>(bits);
    const double value = SpecF16(code);
    if (std::isnan(value)) continue;  // infinities and subnormals included
    ASSERT_EQ(FloatToF16(static_cast<float>(value)), code) << bits;
  }
}

TEST(F16Test, RoundsHalfToEvenAtEveryMidpoint) {
  // Non-negative finite codes 0x0000..0x7BFF; the step from the largest
  // finite (65504) goes to infinity, whose "midpoint" is 65520.
  for (uint32_t code = 0; code < 0x7C00; ++code) {
    const double low = SpecF16(static_cast<uint16_t>(code));
    const double high =
        code == 0x7BFF ? 65536.0 : SpecF16(static_cast<uint16_t>(code + 1));
    const float mid = static_cast<float>((low + high) / 2);
    ASSERT_EQ(static_cast<double>(mid), (low + high) / 2);
    const uint16_t even =
        static_cast<uint16_t>((code & 1) == 0 ? code : code + 1);
    ASSERT_EQ(FloatToF16(mid), even) << code;
    ASSERT_EQ(FloatToF16(-mid), 0x8000 | even) << code;
    ASSERT_EQ(FloatToF16(std::nextafter(mid, 0.0f)), code) << code;
    ASSERT_EQ(FloatToF16(std::nextafter(mid, 1e9f)), code + 1) << code;
  }
}

TEST(F16Test, SubnormalsAndOverflow) {
  EXPECT_EQ(FloatToF16(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(FloatToF16(std::ldexp(1.0f, -25)), 0x0000);  // tie to even zero
  EXPECT_EQ(FloatToF16(-std::ldexp(1.0f, -25)), 0x8000);
  EXPECT_EQ(FloatToF16(std::ldexp(3.0f, -25)), 0x0002);
  EXPECT_EQ(FloatToF16(std::ldexp(1023.0f, -24)), 0x03FF);  // largest subnormal
  EXPECT_EQ(FloatToF16(std::ldexp(1.0f, -14)), 0x0400);     // smallest normal
  EXPECT_EQ(FloatToF16(std::ldexp(2047.0f, -25)),
            0x0400);  // tie across boundary
  EXPECT_EQ(FloatToF16(1e-10f), 0x0000);
  EXPECT_EQ(FloatToF16(65504.0f), 0x7BFF);
  EXPECT_EQ(FloatToF16(65519.0f), 0x7BFF);
  EXPECT_EQ(FloatToF16(65520.0f), 0x7C00);
  EXPECT_EQ(FloatToF16(1e6f), 0x7C00);
  EXPECT_EQ(FloatToF16(-1e6f), 0xFC00);
  EXPECT_EQ(FloatToF16(std::numeric_limits<float>::max()), 0x7C00);
  EXPECT_EQ(FloatToF16(std::numeric_limits<float>::infinity()), 0x7C00);
  EXPECT_EQ(FloatToF16(-std::numeric_limits<float>::infinity()), 0xFC00);
  EXPECT_EQ(F16ToFloat(0x7C00), std::numeric_limits<float>::infinity());
  const uint16_t nan = FloatToF16(std::numeric_limits<float>::quiet_NaN());
  EXPECT_TRUE(IsF16NaNOrInf(nan) && (nan & 0x3FF) != 0) << nan;
  EXPECT_TRUE(std::isnan(F16ToFloat(nan)));
}

// ------------------------------------------------- SIMD kernels' decoding

// Multiplies a one-row weight by every one-hot input at once, so output i is
// the kernel's decoded value of column i (times 1, plus zeros: exact).
std::vector<float> DecodeThroughLinear(DType dtype,
                                       const std::vector<uint8_t>& row,
                                       int64_t cols) {
  LinearWeight weight;
  weight.dtype = dtype;
  weight.rows = 1;
  weight.cols = cols;
  weight.data = row.data();
  std::vector<float> one_hot(static_cast<size_t>(cols * cols), 0.0f);
  for (int64_t i = 0; i < cols; ++i) one_hot[i * cols + i] = 1.0f;
  std::vector<float> y(static_cast<size_t>(cols), -12345.0f);
  ThreadPool pool(1);
  Linear(weight, one_hot.data(), cols, y.data(), pool);
  return y;
}

TEST(KernelDecodeTest, Fp8RowOfAll256CodesIsExact) {
  std::vector<uint8_t> row(256);
  for (int code = 0; code < 256; ++code) {
    row[code] = IsFp8NaNCode(code) ? 0 : static_cast<uint8_t>(code);
  }
  const std::vector<float> y = DecodeThroughLinear(DType::kF8E4M3, row, 256);
  for (int code = 0; code < 256; ++code) {
    EXPECT_EQ(y[code], Fp8E4M3ToFloat(row[code])) << "code " << code;
  }
}

TEST(KernelDecodeTest, Fp8WithScaleAndTailColumns) {
  // 259 columns: a masked tail after the full vectors; scale 0.5 is exact.
  std::vector<uint8_t> row(259);
  for (size_t i = 0; i < row.size(); ++i) {
    const int code = static_cast<int>((i * 37 + 11) % 256);
    row[i] = IsFp8NaNCode(code) ? 0 : static_cast<uint8_t>(code);
  }
  LinearWeight weight;
  weight.dtype = DType::kF8E4M3;
  weight.rows = 1;
  weight.cols = static_cast<int64_t>(row.size());
  weight.data = row.data();
  weight.scales = {0.5f};
  const int64_t cols = weight.cols;
  std::vector<float> one_hot(static_cast<size_t>(cols * cols), 0.0f);
  for (int64_t i = 0; i < cols; ++i) one_hot[i * cols + i] = 1.0f;
  std::vector<float> y(static_cast<size_t>(cols));
  ThreadPool pool(1);
  Linear(weight, one_hot.data(), cols, y.data(), pool);
  for (int64_t i = 0; i < cols; ++i) {
    EXPECT_EQ(y[i], Fp8E4M3ToFloat(row[i]) * 0.5f) << "column " << i;
  }
}

// Every finite 16-bit code, in rows of 1024 columns.
void CheckAll16BitCodes(DType dtype) {
  constexpr int64_t kCols = 1024;
  for (uint32_t start = 0; start < 0x10000; start += kCols) {
    std::vector<uint8_t> row(2 * kCols);
    std::vector<uint16_t> codes(kCols);
    for (int64_t i = 0; i < kCols; ++i) {
      uint16_t code = static_cast<uint16_t>(start + i);
      const bool special =
          dtype == DType::kBF16 ? IsBf16NaNOrInf(code) : IsF16NaNOrInf(code);
      if (special) code = 0;  // inf x 0 would be NaN
      codes[i] = code;
      std::memcpy(&row[2 * i], &code, 2);
    }
    const std::vector<float> y = DecodeThroughLinear(dtype, row, kCols);
    for (int64_t i = 0; i < kCols; ++i) {
      const float want =
          dtype == DType::kBF16 ? Bf16ToFloat(codes[i]) : F16ToFloat(codes[i]);
      ASSERT_EQ(y[i], want) << DTypeName(dtype) << " code " << codes[i];
    }
  }
}

TEST(KernelDecodeTest, Bf16RowIsExact) { CheckAll16BitCodes(DType::kBF16); }

TEST(KernelDecodeTest, F16RowIsExact) { CheckAll16BitCodes(DType::kF16); }

}  // namespace
}  // namespace moe

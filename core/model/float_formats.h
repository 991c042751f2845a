#ifndef MOE_CORE_MODEL_FLOAT_FORMATS_H_
#define MOE_CORE_MODEL_FLOAT_FORMATS_H_

#include <cstdint>

// Scalar conversions between float32 and the narrow formats stored in
// checkpoints. The SIMD kernels decode the same bit patterns in bulk; these
// are the definitions they are tested against.
namespace moe {

// Largest finite OCP FP8 E4M3 (e4m3fn) value.
inline constexpr float kFp8E4M3Max = 448.0f;

// Exact decode of an FP8 E4M3 (e4m3fn) code: bias 7, 3 mantissa bits,
// subnormals, no infinities, NaN for 0x7F and 0xFF.
float Fp8E4M3ToFloat(uint8_t code);

// Round-to-nearest-even encode with saturation to +-448. NaN encodes as 0x7F
// (sign kept); infinities saturate.
uint8_t FloatToFp8E4M3(float value);

float Bf16ToFloat(uint16_t bits);
// Round-to-nearest-even; NaN stays NaN.
uint16_t FloatToBf16(float value);

float F16ToFloat(uint16_t bits);
// Round-to-nearest-even with overflow to infinity (IEEE binary16).
uint16_t FloatToF16(float value);

}  // namespace moe

#endif  // MOE_CORE_MODEL_FLOAT_FORMATS_H_

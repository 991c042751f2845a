// AVX-512 instantiation of the matrix kernels. The target pragma comes after
// every standard include so that inline functions from headers are not
// compiled for AVX-512 (the linker could pick them for callers on CPUs
// without it); the kernels' traits type lives in an anonymous namespace.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/kernels/linear_kernels.h"

namespace moe::internal {

bool CpuHasAvx512Kernels() {
  return __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("f16c") &&
         __builtin_cpu_supports("fma");
}

}  // namespace moe::internal

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,f16c,fma")

#include "core/kernels/linear_kernels_simd.h"

namespace moe::internal {
namespace {

struct Avx512 {
  using Reg = __m512;
  static constexpr int kWidth = 16;
  static Reg Zero() { return _mm512_setzero_ps(); }
  static Reg LoadFloats(const float* p) { return _mm512_loadu_ps(p); }
  static void Store(float* p, Reg v) { _mm512_storeu_ps(p, v); }
  static Reg Fma(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  static float Sum(Reg v) { return _mm512_reduce_add_ps(v); }

  template <DType D>
  static Reg LoadWeights(const uint8_t* p) {
    if constexpr (D == DType::kF8E4M3) {
      const __m128i bytes =
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
      __m256i half = _mm256_slli_epi16(_mm256_cvtepi8_epi16(bytes), 7);
      half =
          _mm256_and_si256(half, _mm256_set1_epi16(static_cast<short>(0xBF80)));
      return _mm512_cvtph_ps(half);
    } else if constexpr (D == DType::kBF16) {
      const __m256i half =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
      return _mm512_castsi512_ps(
          _mm512_slli_epi32(_mm512_cvtepu16_epi32(half), 16));
    } else if constexpr (D == DType::kF16) {
      return _mm512_cvtph_ps(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    } else {
      return _mm512_loadu_ps(reinterpret_cast<const float*>(p));
    }
  }
};

}  // namespace

void LinearRowsAvx512(const LinearWeight& w, int64_t row_begin, int64_t row_end,
                      const float* x, int64_t n, float* y) {
  SimdLinearRows<Avx512>(w, row_begin, row_end, x, n, y);
}

}  // namespace moe::internal

#pragma GCC pop_options

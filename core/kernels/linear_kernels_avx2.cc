// AVX2 instantiation of the matrix kernels, for x86-64 CPUs without AVX-512
// (see linear_kernels_avx512.cc for why the pragma follows the includes).
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/kernels/linear_kernels.h"

namespace moe::internal {

bool CpuHasAvx2Kernels() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c") &&
         __builtin_cpu_supports("fma");
}

}  // namespace moe::internal

#pragma GCC push_options
#pragma GCC target("avx2,f16c,fma")

#include "core/kernels/linear_kernels_simd.h"

namespace moe::internal {
namespace {

struct Avx2 {
  using Reg = __m256;
  static constexpr int kWidth = 8;
  static Reg Zero() { return _mm256_setzero_ps(); }
  static Reg LoadFloats(const float* p) { return _mm256_loadu_ps(p); }
  static void Store(float* p, Reg v) { _mm256_storeu_ps(p, v); }
  static Reg Fma(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
  static float Sum(Reg v) {
    __m128 sum =
        _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
    sum = _mm_add_ss(sum, _mm_movehdup_ps(sum));
    return _mm_cvtss_f32(sum);
  }

  template <DType D>
  static Reg LoadWeights(const uint8_t* p) {
    if constexpr (D == DType::kF8E4M3) {
      const __m128i bytes =
          _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
      __m128i half = _mm_slli_epi16(_mm_cvtepi8_epi16(bytes), 7);
      half = _mm_and_si128(half, _mm_set1_epi16(static_cast<short>(0xBF80)));
      return _mm256_cvtph_ps(half);
    } else if constexpr (D == DType::kBF16) {
      const __m128i half = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
      return _mm256_castsi256_ps(
          _mm256_slli_epi32(_mm256_cvtepu16_epi32(half), 16));
    } else if constexpr (D == DType::kF16) {
      return _mm256_cvtph_ps(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    } else {
      return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
    }
  }
};

}  // namespace

void LinearRowsAvx2(const LinearWeight& w, int64_t row_begin, int64_t row_end,
                    const float* x, int64_t n, float* y) {
  SimdLinearRows<Avx2>(w, row_begin, row_end, x, n, y);
}

}  // namespace moe::internal

#pragma GCC pop_options

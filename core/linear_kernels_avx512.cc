// AVX-512 matrix-vector kernels. The target pragma comes after every include
// so that inline functions from headers are not compiled for AVX-512 (they
// could be picked by the linker for callers on CPUs without it).
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "core/linear_kernels.h"

namespace moe::internal {

bool CpuHasAvx512Kernels() {
  return __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("f16c") &&
         __builtin_cpu_supports("fma");
}

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,f16c,fma")

namespace {

// Columns decoded per pass: 4 rows x 512 floats = 8 KB, resident in L1 while
// every input row is multiplied with them.
constexpr int64_t kChunk = 512;
constexpr int kBlockRows = 4;
// How far ahead of the loads the decode kernels prefetch, in elements.
constexpr int64_t kPrefetchElements = 256;

// Loads 16 consecutive weights (masked) as float32. FP8 comes out scaled by
// 2^-8: its bits shifted into a binary16 (sign, 4 exponent bits in the low
// end of the 5-bit field, 3 mantissa bits) make the exact value times 2^-8,
// subnormals included, and the hardware converts that to float32.
template <DType D>
inline __m512 Load16(const uint8_t* row, int64_t col, __mmask16 mask) {
  if constexpr (D == DType::kF8E4M3) {
    const __m128i bytes = _mm_maskz_loadu_epi8(mask, row + col);
    __m256i half = _mm256_slli_epi16(_mm256_cvtepi8_epi16(bytes), 7);
    half = _mm256_and_si256(half, _mm256_set1_epi16(static_cast<short>(0xBF80)));
    return _mm512_cvtph_ps(half);
  } else if constexpr (D == DType::kBF16) {
    const __m256i half = _mm256_maskz_loadu_epi16(mask, row + 2 * col);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(half), 16));
  } else if constexpr (D == DType::kF16) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, row + 2 * col));
  } else {
    return _mm512_maskz_loadu_ps(mask, row + 4 * col);
  }
}

template <DType D>
constexpr float kDecodeFactor = D == DType::kF8E4M3 ? 256.0f : 1.0f;

// Adds the decoded chunk times kInputs input rows to their accumulators
// (acc[i][j] is 16 floats for input i, weight row j): kInputs x kRows sums
// live in registers, so each decoded vector is loaded once per kInputs rows.
template <int kRows, int kInputs>
inline void AccumulateChunk(const float (*decoded)[kChunk], int64_t full,
                            int tail, const float* x, int64_t cols, float* acc) {
  const __mmask16 tail_mask = static_cast<__mmask16>((1u << tail) - 1);
  __m512 sums[kInputs][kRows];
#pragma GCC unroll 4
  for (int i = 0; i < kInputs; ++i) {
#pragma GCC unroll 4
    for (int j = 0; j < kRows; ++j) sums[i][j] = _mm512_loadu_ps(acc + (i * kRows + j) * 16);
  }
  const int64_t vectors = full + (tail ? 1 : 0);
  for (int64_t v = 0; v < vectors; ++v) {
    const __mmask16 mask = v < full ? __mmask16{0xFFFF} : tail_mask;
    __m512 weights[kRows];
#pragma GCC unroll 4
    for (int j = 0; j < kRows; ++j) weights[j] = _mm512_load_ps(&decoded[j][v * 16]);
#pragma GCC unroll 4
    for (int i = 0; i < kInputs; ++i) {
      const __m512 xv = _mm512_maskz_loadu_ps(mask, x + i * cols + v * 16);
#pragma GCC unroll 4
      for (int j = 0; j < kRows; ++j) sums[i][j] = _mm512_fmadd_ps(weights[j], xv, sums[i][j]);
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < kInputs; ++i) {
#pragma GCC unroll 4
    for (int j = 0; j < kRows; ++j) _mm512_storeu_ps(acc + (i * kRows + j) * 16, sums[i][j]);
  }
}

// Many inputs (prefill, batched experts): each chunk of kRows weight rows is
// decoded once into L1 and reused by every input row.
template <DType D, int kRows>
void RowBlock(const LinearWeight& w, int64_t r0, const float* x, int64_t n,
              float* y, std::vector<float>& acc) {
  alignas(64) float decoded[kRows][kChunk];
  const int64_t cols = w.cols;
  const int64_t row_bytes = cols * static_cast<int64_t>(DTypeSize(D));
  acc.assign(static_cast<size_t>(n) * kRows * 16, 0.0f);
  for (int64_t k0 = 0; k0 < cols; k0 += kChunk) {
    const int64_t len = std::min(kChunk, cols - k0);
    const int64_t full = len / 16;
    const int tail = static_cast<int>(len % 16);
    const __mmask16 tail_mask = static_cast<__mmask16>((1u << tail) - 1);
    for (int j = 0; j < kRows; ++j) {
      const uint8_t* row = w.data + (r0 + j) * row_bytes;
      for (int64_t v = 0; v < full; ++v) {
        _mm512_store_ps(&decoded[j][v * 16], Load16<D>(row, k0 + v * 16, 0xFFFF));
      }
      if (tail) {
        _mm512_store_ps(&decoded[j][full * 16],
                        Load16<D>(row, k0 + full * 16, tail_mask));
      }
    }
    const float* xk = x + k0;
    float* acc_i = acc.data();
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
      AccumulateChunk<kRows, 4>(decoded, full, tail, xk + i * cols, cols,
                                acc_i + i * kRows * 16);
    }
    switch (n - i) {
      case 3:
        AccumulateChunk<kRows, 3>(decoded, full, tail, xk + i * cols, cols,
                                  acc_i + i * kRows * 16);
        break;
      case 2:
        AccumulateChunk<kRows, 2>(decoded, full, tail, xk + i * cols, cols,
                                  acc_i + i * kRows * 16);
        break;
      case 1:
        AccumulateChunk<kRows, 1>(decoded, full, tail, xk + i * cols, cols,
                                  acc_i + i * kRows * 16);
        break;
    }
  }
  for (int64_t i = 0; i < n; ++i) {
    for (int j = 0; j < kRows; ++j) {
      const float dot = _mm512_reduce_add_ps(
          _mm512_loadu_ps(acc.data() + (i * kRows + j) * 16));
      y[i * w.rows + r0 + j] = dot * w.RowScale(r0 + j) * kDecodeFactor<D>;
    }
  }
}

// Few inputs (decode): weights are decoded in registers and used at once by
// every input, kRows x kInputs accumulators held in registers.
template <DType D, int kRows, int kInputs>
void DirectRowBlock(const LinearWeight& w, int64_t r0, const float* x, float* y) {
  const int64_t cols = w.cols;
  const int64_t row_bytes = cols * static_cast<int64_t>(DTypeSize(D));
  const uint8_t* rows[kRows];
  for (int j = 0; j < kRows; ++j) rows[j] = w.data + (r0 + j) * row_bytes;
  __m512 sums[kInputs][kRows];
  for (int i = 0; i < kInputs; ++i) {
    for (int j = 0; j < kRows; ++j) sums[i][j] = _mm512_setzero_ps();
  }
  const int64_t full = cols / 16;
  const int tail = static_cast<int>(cols % 16);
  for (int64_t v = 0; v <= full; ++v) {
    if (v == full && tail == 0) break;
    const __mmask16 mask =
        v < full ? __mmask16{0xFFFF} : static_cast<__mmask16>((1u << tail) - 1);
    __m512 weights[kRows];
#pragma GCC unroll 4
    for (int j = 0; j < kRows; ++j) {
      // One line ahead in each row's stream (64 bytes = 4 iterations of FP8).
      _mm_prefetch(reinterpret_cast<const char*>(rows[j]) +
                       (v * 16 + kPrefetchElements) * DTypeSize(D),
                   _MM_HINT_T0);
      weights[j] = Load16<D>(rows[j], v * 16, mask);
    }
#pragma GCC unroll 4
    for (int i = 0; i < kInputs; ++i) {
      const __m512 xv = _mm512_maskz_loadu_ps(mask, x + i * cols + v * 16);
#pragma GCC unroll 4
      for (int j = 0; j < kRows; ++j) {
        sums[i][j] = _mm512_fmadd_ps(weights[j], xv, sums[i][j]);
      }
    }
  }
  for (int i = 0; i < kInputs; ++i) {
    for (int j = 0; j < kRows; ++j) {
      y[i * w.rows + r0 + j] =
          _mm512_reduce_add_ps(sums[i][j]) * w.RowScale(r0 + j) * kDecodeFactor<D>;
    }
  }
}

template <DType D, int kInputs>
void DirectRows(const LinearWeight& w, int64_t begin, int64_t end,
                const float* x, float* y) {
  int64_t r = begin;
  for (; r + kBlockRows <= end; r += kBlockRows) {
    DirectRowBlock<D, kBlockRows, kInputs>(w, r, x, y);
  }
  for (; r < end; ++r) DirectRowBlock<D, 1, kInputs>(w, r, x, y);
}

template <DType D>
void Rows(const LinearWeight& w, int64_t begin, int64_t end, const float* x,
          int64_t n, float* y) {
  switch (n) {
    case 1:
      return DirectRows<D, 1>(w, begin, end, x, y);
    case 2:
      return DirectRows<D, 2>(w, begin, end, x, y);
    case 3:
      return DirectRows<D, 3>(w, begin, end, x, y);
    case 4:
      return DirectRows<D, 4>(w, begin, end, x, y);
  }
  thread_local std::vector<float> acc;
  int64_t r = begin;
  for (; r + kBlockRows <= end; r += kBlockRows) {
    RowBlock<D, kBlockRows>(w, r, x, n, y, acc);
  }
  for (; r < end; ++r) RowBlock<D, 1>(w, r, x, n, y, acc);
}

}  // namespace

void LinearRowsAvx512(const LinearWeight& w, int64_t row_begin,
                      int64_t row_end, const float* x, int64_t n, float* y) {
  switch (w.dtype) {
    case DType::kF8E4M3:
      return Rows<DType::kF8E4M3>(w, row_begin, row_end, x, n, y);
    case DType::kBF16:
      return Rows<DType::kBF16>(w, row_begin, row_end, x, n, y);
    case DType::kF16:
      return Rows<DType::kF16>(w, row_begin, row_end, x, n, y);
    case DType::kF32:
      return Rows<DType::kF32>(w, row_begin, row_end, x, n, y);
  }
}

#pragma GCC pop_options

}  // namespace moe::internal

#ifndef MOE_CORE_KERNELS_LINEAR_KERNELS_SIMD_H_
#define MOE_CORE_KERNELS_LINEAR_KERNELS_SIMD_H_

// The matrix kernels, generic over a vector type. Included by one source file
// per instruction set (linear_kernels_avx512.cc, linear_kernels_avx2.cc)
// after its target pragma, with a traits type V from that file's anonymous
// namespace, so each instantiation is compiled for, and private to, its
// instruction set:
//   V::Reg, V::kWidth (floats per register)
//   V::Zero(), V::LoadFloats(const float*), V::Store(float*, Reg),
//   V::Fma(a, b, c) = a * b + c, V::Sum(Reg)
//   V::LoadWeights<D>(const uint8_t*): kWidth stored values as floats (FP8
//   scaled by 2^-8, see kDecodeFactor)
//
// Requires <algorithm>, <cstring>, <vector> and core/kernels/linear.h.

namespace moe::internal {

// FP8 is decoded by shifting its bits into a binary16 (sign, the 4 exponent
// bits in the low end of the 5-bit field, 3 mantissa bits): that is the exact
// value times 2^-8, subnormals included, and the hardware widens it to
// float32. The 2^8 is folded into the row scale.
template <DType D>
constexpr float kDecodeFactor = D == DType::kF8E4M3 ? 256.0f : 1.0f;

// Columns decoded per pass of the batched kernel: 4 rows x 512 floats = 8 KB,
// resident in L1 while every input row is multiplied with them.
constexpr int64_t kSimdChunk = 512;
constexpr int kSimdBlockRows = 4;

// The last, partial register of a row: copied into a zero-padded buffer so
// that no load reads past the end.
template <typename V, DType D>
typename V::Reg LoadWeightsPartial(const uint8_t* values, int count) {
  alignas(64) uint8_t padded[64] = {};
  std::memcpy(padded, values, count * DTypeSize(D));
  return V::template LoadWeights<D>(padded);
}

template <typename V>
typename V::Reg LoadFloatsPartial(const float* values, int count) {
  alignas(64) float padded[16] = {};
  std::memcpy(padded, values, count * sizeof(float));
  return V::LoadFloats(padded);
}

// sums[i][j] += weights[j] * x[i, col : col + kWidth] for every input i;
// the partial form reads only `tail` columns of x.
template <typename V, int kRows, int kInputs, bool kPartial>
inline void MultiplyInputs(const typename V::Reg (&weights)[kRows],
                           const float* x, int64_t cols, int64_t col, int tail,
                           typename V::Reg (&sums)[kInputs][kRows]) {
#pragma GCC unroll 4
  for (int i = 0; i < kInputs; ++i) {
    const float* xi = x + i * cols + col;
    const typename V::Reg xv =
        kPartial ? LoadFloatsPartial<V>(xi, tail) : V::LoadFloats(xi);
#pragma GCC unroll 4
    for (int j = 0; j < kRows; ++j)
      sums[i][j] = V::Fma(weights[j], xv, sums[i][j]);
  }
}

// One register's worth of columns of the direct kernel: decode kRows
// registers of weights and multiply them into kInputs x kRows sums. The
// partial form reads only `tail` columns (the last register of a row).
template <typename V, DType D, int kRows, int kInputs, bool kPartial>
inline void DirectStep(const uint8_t* const* rows, int64_t prefetch_offset,
                       const float* x, int64_t cols, int64_t col, int tail,
                       typename V::Reg (&sums)[kInputs][kRows]) {
  typename V::Reg weights[kRows];
#pragma GCC unroll 4
  for (int j = 0; j < kRows; ++j) {
    const uint8_t* at = rows[j] + col * DTypeSize(D);
    __builtin_prefetch(at + prefetch_offset);
    weights[j] = kPartial ? LoadWeightsPartial<V, D>(at, tail)
                          : V::template LoadWeights<D>(at);
  }
  MultiplyInputs<V, kRows, kInputs, kPartial>(weights, x, cols, col, tail,
                                              sums);
}

// Few inputs (decode): weights are decoded in registers and used at once by
// every input, kRows x kInputs sums held in registers. Each row's loads are
// preceded by a prefetch of the same columns of the next block of rows:
// rows are short streams (a few KB) that the hardware prefetcher would meet
// cold.
template <typename V, DType D, int kRows, int kInputs>
void DirectRowBlock(const LinearWeight& w, int64_t r0, const float* x,
                    float* y) {
  constexpr int kW = V::kWidth;
  const int64_t cols = w.cols;
  const int64_t row_bytes = cols * static_cast<int64_t>(DTypeSize(D));
  const uint8_t* rows[kRows];
  for (int j = 0; j < kRows; ++j) rows[j] = w.data + (r0 + j) * row_bytes;
  const int64_t prefetch_offset = kRows * row_bytes;
  typename V::Reg sums[kInputs][kRows];
  for (int i = 0; i < kInputs; ++i) {
    for (int j = 0; j < kRows; ++j) sums[i][j] = V::Zero();
  }
  const int64_t full = cols / kW;
  const int tail = static_cast<int>(cols % kW);
  for (int64_t v = 0; v < full; ++v) {
    DirectStep<V, D, kRows, kInputs, false>(rows, prefetch_offset, x, cols,
                                            v * kW, 0, sums);
  }
  if (tail) {
    DirectStep<V, D, kRows, kInputs, true>(rows, prefetch_offset, x, cols,
                                           full * kW, tail, sums);
  }
  for (int i = 0; i < kInputs; ++i) {
    for (int j = 0; j < kRows; ++j) {
      y[i * w.rows + r0 + j] =
          V::Sum(sums[i][j]) * w.RowScale(r0 + j) * kDecodeFactor<D>;
    }
  }
}

// One register's worth of columns of a decoded chunk times kInputs inputs.
template <typename V, int kRows, int kInputs, bool kPartial>
inline void ChunkStep(const float (*decoded)[kSimdChunk], const float* x,
                      int64_t cols, int64_t col, int tail,
                      typename V::Reg (&sums)[kInputs][kRows]) {
  typename V::Reg weights[kRows];
#pragma GCC unroll 4
  for (int j = 0; j < kRows; ++j) weights[j] = V::LoadFloats(&decoded[j][col]);
  MultiplyInputs<V, kRows, kInputs, kPartial>(weights, x, cols, col, tail,
                                              sums);
}

// Adds a decoded chunk (`len` columns of kRows rows) times kInputs input rows
// to their partial sums (acc[i][j] holds kWidth floats): kInputs x kRows sums
// live in registers, so each decoded register is loaded once per kInputs rows.
template <typename V, int kRows, int kInputs>
void AccumulateChunk(const float (*decoded)[kSimdChunk], int64_t len,
                     const float* x, int64_t cols, float* acc) {
  constexpr int kW = V::kWidth;
  typename V::Reg sums[kInputs][kRows];
  for (int i = 0; i < kInputs; ++i) {
    for (int j = 0; j < kRows; ++j)
      sums[i][j] = V::LoadFloats(acc + (i * kRows + j) * kW);
  }
  const int64_t full = len / kW;
  const int tail = static_cast<int>(len % kW);
  for (int64_t v = 0; v < full; ++v) {
    ChunkStep<V, kRows, kInputs, false>(decoded, x, cols, v * kW, 0, sums);
  }
  if (tail)
    ChunkStep<V, kRows, kInputs, true>(decoded, x, cols, full * kW, tail, sums);
  for (int i = 0; i < kInputs; ++i) {
    for (int j = 0; j < kRows; ++j)
      V::Store(acc + (i * kRows + j) * kW, sums[i][j]);
  }
}

// Many inputs (prefill, batched experts): each chunk of kRows weight rows is
// decoded once into L1 and reused by every input row, four at a time.
template <typename V, DType D, int kRows>
void BufferedRowBlock(const LinearWeight& w, int64_t r0, const float* x,
                      int64_t n, float* y, std::vector<float>& acc) {
  constexpr int kW = V::kWidth;
  alignas(64) float decoded[kRows][kSimdChunk];
  const int64_t cols = w.cols;
  const int64_t row_bytes = cols * static_cast<int64_t>(DTypeSize(D));
  acc.assign(static_cast<size_t>(n) * kRows * kW, 0.0f);
  for (int64_t k0 = 0; k0 < cols; k0 += kSimdChunk) {
    const int64_t len = std::min(kSimdChunk, cols - k0);
    const int64_t full = len / kW;
    const int tail = static_cast<int>(len % kW);
    for (int j = 0; j < kRows; ++j) {
      const uint8_t* row = w.data + (r0 + j) * row_bytes + k0 * DTypeSize(D);
      for (int64_t v = 0; v < full; ++v) {
        V::Store(&decoded[j][v * kW],
                 V::template LoadWeights<D>(row + v * kW * DTypeSize(D)));
      }
      if (tail) {
        V::Store(
            &decoded[j][full * kW],
            LoadWeightsPartial<V, D>(row + full * kW * DTypeSize(D), tail));
      }
    }
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
      AccumulateChunk<V, kRows, 4>(decoded, len, x + i * cols + k0, cols,
                                   acc.data() + i * kRows * kW);
    }
    float* rest = acc.data() + i * kRows * kW;
    const float* x_rest = x + i * cols + k0;
    switch (n - i) {
      case 3:
        AccumulateChunk<V, kRows, 3>(decoded, len, x_rest, cols, rest);
        break;
      case 2:
        AccumulateChunk<V, kRows, 2>(decoded, len, x_rest, cols, rest);
        break;
      case 1:
        AccumulateChunk<V, kRows, 1>(decoded, len, x_rest, cols, rest);
        break;
    }
  }
  for (int64_t i = 0; i < n; ++i) {
    for (int j = 0; j < kRows; ++j) {
      const float dot =
          V::Sum(V::LoadFloats(acc.data() + (i * kRows + j) * kW));
      y[i * w.rows + r0 + j] = dot * w.RowScale(r0 + j) * kDecodeFactor<D>;
    }
  }
}

template <typename V, DType D, int kInputs>
void DirectRows(const LinearWeight& w, int64_t begin, int64_t end,
                const float* x, float* y) {
  int64_t r = begin;
  for (; r + kSimdBlockRows <= end; r += kSimdBlockRows) {
    DirectRowBlock<V, D, kSimdBlockRows, kInputs>(w, r, x, y);
  }
  for (; r < end; ++r) DirectRowBlock<V, D, 1, kInputs>(w, r, x, y);
}

template <typename V, DType D>
void SimdRows(const LinearWeight& w, int64_t begin, int64_t end, const float* x,
              int64_t n, float* y) {
  switch (n) {
    case 1:
      return DirectRows<V, D, 1>(w, begin, end, x, y);
    case 2:
      return DirectRows<V, D, 2>(w, begin, end, x, y);
    case 3:
      return DirectRows<V, D, 3>(w, begin, end, x, y);
    case 4:
      return DirectRows<V, D, 4>(w, begin, end, x, y);
  }
  thread_local std::vector<float> acc;
  int64_t r = begin;
  for (; r + kSimdBlockRows <= end; r += kSimdBlockRows) {
    BufferedRowBlock<V, D, kSimdBlockRows>(w, r, x, n, y, acc);
  }
  for (; r < end; ++r) BufferedRowBlock<V, D, 1>(w, r, x, n, y, acc);
}

// The entry point each instruction-set file exports.
template <typename V>
void SimdLinearRows(const LinearWeight& w, int64_t row_begin, int64_t row_end,
                    const float* x, int64_t n, float* y) {
  switch (w.dtype) {
    case DType::kF8E4M3:
      return SimdRows<V, DType::kF8E4M3>(w, row_begin, row_end, x, n, y);
    case DType::kBF16:
      return SimdRows<V, DType::kBF16>(w, row_begin, row_end, x, n, y);
    case DType::kF16:
      return SimdRows<V, DType::kF16>(w, row_begin, row_end, x, n, y);
    case DType::kF32:
      return SimdRows<V, DType::kF32>(w, row_begin, row_end, x, n, y);
  }
}

}  // namespace moe::internal

#endif  // MOE_CORE_KERNELS_LINEAR_KERNELS_SIMD_H_

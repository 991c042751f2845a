#ifndef MOE_EXPERT_WORKER_CUDA_EXPERT_KERNELS_H_
#define MOE_EXPERT_WORKER_CUDA_EXPERT_KERNELS_H_

// The element-wise stages of the expert FFN around its two products. A
// layer's routed (row, expert) pairs are "slots", grouped by expert so that
// each expert's slots are one contiguous block of rows for its products.
// Every slot carries its own activation scale (dynamic per-token scaling):
// the products run on scaled values and the stages here apply the scales.

#include <cuda_runtime.h>

#include <cstdint>

#include "core/cuda/lt_matmul.h"

namespace moe::cuda {

// FP8 E4M3's largest finite value: a slot's scale maps its largest
// magnitude there.
inline constexpr float kFp8E4M3Max = 448.0f;

// For each slot s: q[s, :] = x[src_rows[s], :] / scale[s] in `format` (FP8:
// scale = max|x row| / 448, or 1 for a zero row; BF16: scale = 1). q is
// [slots, cols] of 1-byte (FP8) or 2-byte (BF16) elements.
cudaError_t QuantizeRows(GemmInput format, const float* x,
                         const int32_t* src_rows, int64_t slots, int64_t cols,
                         void* q, float* scales, cudaStream_t stream);

// The gated unit per slot, from the product with [w1; w3] (g13[s, 0:I] is
// w1's output, g13[s, I:2I] w3's): h = silu(a) * b with a = g13[s, i] *
// x_scales[s] * w13_scales[s][i] and b = g13[s, I + i] * x_scales[s] *
// w13_scales[s][I + i], where w13_scales[s] is the slot's expert's [2I]
// channel scales (null: 1); h is then quantized per slot like QuantizeRows
// into h_q [slots, I] and h_scales.
cudaError_t SwiGluQuantize(GemmInput format, const float* g13,
                           const float* x_scales,
                           const float* const* w13_scales, int64_t slots,
                           int64_t intermediate, void* h_q, float* h_scales,
                           cudaStream_t stream);

// out[r, c] = sum over the slots of row r (row_slots[row_offsets[r] ..
// row_offsets[r + 1]]) of weights[s] * h_scales[s] * w2_scales[s][c] *
// y[s, c], where w2_scales[s] is the slot's expert's [cols] channel scales
// (null: 1), for rows [0, n); a row without slots gets zeros.
cudaError_t CombineSlots(const float* y, const float* h_scales,
                         const float* const* w2_scales, const float* weights,
                         const int32_t* row_offsets, const int32_t* row_slots,
                         int64_t n, int64_t cols, float* out,
                         cudaStream_t stream);

}  // namespace moe::cuda

#endif  // MOE_EXPERT_WORKER_CUDA_EXPERT_KERNELS_H_

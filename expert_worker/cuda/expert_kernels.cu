#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include "core/cuda/cuda_check.h"
#include "core/cuda/warp_reduce.cuh"
#include "expert_worker/cuda/expert_kernels.h"

namespace moe::cuda {
namespace {

constexpr int kThreads = 256;

// Largest value over the block; every thread gets it.
__device__ float BlockMax(float value) {
  __shared__ float warp_max[kThreads / 32];
  value = WarpMax(value);
  if (threadIdx.x % 32 == 0) warp_max[threadIdx.x / 32] = value;
  __syncthreads();
  float result = warp_max[0];
  for (int w = 1; w < kThreads / 32; ++w) result = fmaxf(result, warp_max[w]);
  __syncthreads();  // warp_max is reused by the next call
  return result;
}

__device__ float SlotScale(float amax) {
  return amax > 0.0f ? amax / kFp8E4M3Max : 1.0f;
}

template <typename T>
__device__ T Convert(float value);
template <>
__device__ __nv_fp8_e4m3 Convert(float value) {
  return __nv_fp8_e4m3(value);  // saturates to +-448
}
template <>
__device__ __nv_bfloat16 Convert(float value) {
  return __float2bfloat16(value);
}

template <typename T>
constexpr bool kScaled = sizeof(T) == 1;  // FP8 needs a scale; BF16 does not

template <typename T>
__global__ void QuantizeRowsKernel(const float* x, const int32_t* src_rows,
                                   int64_t cols, T* q, float* scales) {
  const int64_t slot = blockIdx.x;
  const float* row = x + src_rows[slot] * cols;
  float scale = 1.0f;
  if constexpr (kScaled<T>) {
    float amax = 0.0f;
    for (int64_t c = threadIdx.x; c < cols; c += kThreads)
      amax = fmaxf(amax, fabsf(row[c]));
    scale = SlotScale(BlockMax(amax));
  }
  const float inverse = 1.0f / scale;
  for (int64_t c = threadIdx.x; c < cols; c += kThreads)
    q[slot * cols + c] = Convert<T>(row[c] * inverse);
  if (threadIdx.x == 0) scales[slot] = scale;
}

__device__ float Silu(float v) { return v / (1.0f + __expf(-v)); }

__device__ float GatedValue(const float* g13, const float* w13_scales,
                            float x_scale, int64_t intermediate, int64_t i) {
  // Scales multiply the products' outputs, not their inputs: the matmuls
  // stay plain FP8 x FP8 products.
  float a = g13[i] * x_scale, b = g13[intermediate + i] * x_scale;
  if (w13_scales != nullptr) {
    a *= w13_scales[i];
    b *= w13_scales[intermediate + i];
  }
  return Silu(a) * b;
}

template <typename T>
__global__ void SwiGluQuantizeKernel(const float* g13, const float* x_scales,
                                     const float* const* slot_w13_scales,
                                     int64_t intermediate, T* h_q,
                                     float* h_scales) {
  const int64_t slot = blockIdx.x;
  const float* row = g13 + slot * 2 * intermediate;
  const float x_scale = x_scales[slot];
  const float* w13_scales = slot_w13_scales[slot];
  float scale = 1.0f;
  if constexpr (kScaled<T>) {
    // Two passes over g13 rather than a row of h in shared memory: the row
    // (intermediate floats) outgrows shared memory at real sizes, and g13 is
    // small next to the weights the products read.
    float amax = 0.0f;
    for (int64_t i = threadIdx.x; i < intermediate; i += kThreads) {
      amax = fmaxf(
          amax, fabsf(GatedValue(row, w13_scales, x_scale, intermediate, i)));
    }
    scale = SlotScale(BlockMax(amax));
  }
  const float inverse = 1.0f / scale;
  for (int64_t i = threadIdx.x; i < intermediate; i += kThreads) {
    h_q[slot * intermediate + i] = Convert<T>(
        GatedValue(row, w13_scales, x_scale, intermediate, i) * inverse);
  }
  if (threadIdx.x == 0) h_scales[slot] = scale;
}

__global__ void CombineSlotsKernel(const float* y, const float* h_scales,
                                   const float* const* w2_scales,
                                   const float* weights,
                                   const int32_t* row_offsets,
                                   const int32_t* row_slots, int64_t cols,
                                   float* out) {
  const int64_t row = blockIdx.x;
  const int32_t begin = row_offsets[row], end = row_offsets[row + 1];
  for (int64_t c = threadIdx.x; c < cols; c += kThreads) {
    float sum = 0.0f;
    for (int32_t i = begin; i < end; ++i) {
      const int32_t slot = row_slots[i];
      const float* scales = w2_scales[slot];
      const float value = weights[slot] * h_scales[slot] * y[slot * cols + c];
      sum += scales != nullptr ? value * scales[c] : value;
    }
    out[row * cols + c] = sum;
  }
}

}  // namespace

cudaError_t QuantizeRows(GemmInput format, const float* x,
                         const int32_t* src_rows, int64_t slots, int64_t cols,
                         void* q, float* scales, cudaStream_t stream) {
  if (slots < 0 || cols <= 0) return cudaErrorInvalidValue;
  if (slots == 0) return cudaSuccess;
  return LaunchError([&] {
    if (format == GemmInput::kFp8E4M3) {
      QuantizeRowsKernel<<<slots, kThreads, 0, stream>>>(
          x, src_rows, cols, static_cast<__nv_fp8_e4m3*>(q), scales);
    } else {
      QuantizeRowsKernel<<<slots, kThreads, 0, stream>>>(
          x, src_rows, cols, static_cast<__nv_bfloat16*>(q), scales);
    }
  });
}

cudaError_t SwiGluQuantize(GemmInput format, const float* g13,
                           const float* x_scales,
                           const float* const* w13_scales, int64_t slots,
                           int64_t intermediate, void* h_q, float* h_scales,
                           cudaStream_t stream) {
  if (slots < 0 || intermediate <= 0) return cudaErrorInvalidValue;
  if (slots == 0) return cudaSuccess;
  return LaunchError([&] {
    if (format == GemmInput::kFp8E4M3) {
      SwiGluQuantizeKernel<<<slots, kThreads, 0, stream>>>(
          g13, x_scales, w13_scales, intermediate,
          static_cast<__nv_fp8_e4m3*>(h_q), h_scales);
    } else {
      SwiGluQuantizeKernel<<<slots, kThreads, 0, stream>>>(
          g13, x_scales, w13_scales, intermediate,
          static_cast<__nv_bfloat16*>(h_q), h_scales);
    }
  });
}

cudaError_t CombineSlots(const float* y, const float* h_scales,
                         const float* const* w2_scales, const float* weights,
                         const int32_t* row_offsets, const int32_t* row_slots,
                         int64_t n, int64_t cols, float* out,
                         cudaStream_t stream) {
  if (n < 0 || cols <= 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  return LaunchError([&] {
    CombineSlotsKernel<<<n, kThreads, 0, stream>>>(
        y, h_scales, w2_scales, weights, row_offsets, row_slots, cols, out);
  });
}

}  // namespace moe::cuda

#ifndef MOE_CORE_KERNELS_CPU_OPS_H_
#define MOE_CORE_KERNELS_CPU_OPS_H_

#include <cstdint>
#include <span>

// Element-wise and row-wise operations of the transformer on float32 rows.
namespace moe {

// out[i, :] = x[i, :] / sqrt(mean(x[i, :]^2) + eps) * weight, for n rows.
void RmsNorm(const float* x, int64_t n, std::span<const float> weight,
             double eps, float* out);

// Rotary position embedding, NeoX style (the two halves of each head are
// rotated as pairs (k, k + head_dim/2)), in place on x[n, heads, head_dim];
// row i is at position positions[i].
void ApplyRope(float* x, int64_t n, int heads, int head_dim,
               const int32_t* positions, double theta);

// gate[i] = silu(gate[i]) * up[i].
void SiluMul(float* gate, const float* up, int64_t count);

// In-place softmax over `count` values.
void Softmax(float* values, int64_t count);

}  // namespace moe

#endif  // MOE_CORE_KERNELS_CPU_OPS_H_

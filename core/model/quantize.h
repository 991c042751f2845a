#ifndef MOE_CORE_MODEL_QUANTIZE_H_
#define MOE_CORE_MODEL_QUANTIZE_H_

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/model/dtype.h"

namespace moe {

enum class ScaleGranularity { kPerTensor, kPerChannel };

// FP8 E4M3 codes of a [rows, cols] matrix with dequantization scales
// (real = code x scale): one scale, or one per row.
struct Fp8Matrix {
  std::vector<uint8_t> codes;
  std::vector<float> scales;
};

// Scales map each group's largest magnitude to 448; an all-zero group gets 1.
Fp8Matrix QuantizeFp8(std::span<const float> values, int64_t rows, int64_t cols,
                      ScaleGranularity granularity);

// The little-endian bytes of `values` stored as F32, F16 or BF16
// (round-to-nearest-even).
std::vector<uint8_t> EncodeFloats(std::span<const float> values, DType dtype);

// Whether a checkpoint tensor is a linear weight that FP8 checkpoints store in
// FP8: attention projections and expert weights. The router gate, embeddings,
// LM head and norms stay BF16, as in the FP8 Skywork-MoE release.
bool IsFp8LinearWeight(const std::string& name);

}  // namespace moe

#endif  // MOE_CORE_MODEL_QUANTIZE_H_

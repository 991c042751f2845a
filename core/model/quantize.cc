#include "core/model/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/match.h"
#include "core/model/float_formats.h"

namespace moe {

Fp8Matrix QuantizeFp8(std::span<const float> values, int64_t rows, int64_t cols,
                      ScaleGranularity granularity) {
  Fp8Matrix result;
  result.codes.resize(values.size());
  const int64_t groups = granularity == ScaleGranularity::kPerTensor ? 1 : rows;
  if (groups == 0) return result;  // no rows: no codes, no scales
  const int64_t group_size = rows * cols / groups;
  for (int64_t g = 0; g < groups; ++g) {
    const float* group = values.data() + g * group_size;
    float amax = 0.0f;
    for (int64_t i = 0; i < group_size; ++i)
      amax = std::max(amax, std::fabs(group[i]));
    const float scale = amax > 0.0f ? amax / kFp8E4M3Max : 1.0f;
    result.scales.push_back(scale);
    for (int64_t i = 0; i < group_size; ++i) {
      result.codes[g * group_size + i] = FloatToFp8E4M3(group[i] / scale);
    }
  }
  return result;
}

std::vector<uint8_t> EncodeFloats(std::span<const float> values, DType dtype) {
  std::vector<uint8_t> bytes(values.size() * DTypeSize(dtype));
  for (size_t i = 0; i < values.size(); ++i) {
    if (dtype == DType::kF32) {
      std::memcpy(&bytes[4 * i], &values[i], 4);
    } else {
      const uint16_t bits = dtype == DType::kBF16 ? FloatToBf16(values[i])
                                                  : FloatToF16(values[i]);
      std::memcpy(&bytes[2 * i], &bits, 2);
    }
  }
  return bytes;
}

bool IsFp8LinearWeight(const std::string& name) {
  if (!absl::StartsWith(name, "model.layers.") ||
      !absl::EndsWith(name, ".weight")) {
    return false;
  }
  return absl::StrContains(name, ".self_attn.") ||
         absl::StrContains(name, ".block_sparse_moe.experts.");
}

}  // namespace moe

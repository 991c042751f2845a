#include "core/model/fp8_weight_writer.h"

#include <memory>

namespace moe {

void AddFp8Weight(CheckpointWriter& writer, const std::string& name,
                  int64_t rows, int64_t cols, ScaleGranularity granularity,
                  std::function<absl::StatusOr<std::vector<float>>()> values) {
  // The codes are written first; their quantization leaves the scales here
  // for the scale tensor that follows.
  auto scales = std::make_shared<std::vector<float>>();
  writer.AddLazy(name, DType::kF8E4M3, {rows, cols},
                 [=]() -> absl::StatusOr<std::vector<uint8_t>> {
                   absl::StatusOr<std::vector<float>> real = values();
                   if (!real.ok()) return real.status();
                   Fp8Matrix fp8 = QuantizeFp8(*real, rows, cols, granularity);
                   *scales = std::move(fp8.scales);
                   return std::move(fp8.codes);
                 });
  const std::vector<int64_t> scale_shape =
      granularity == ScaleGranularity::kPerTensor ? std::vector<int64_t>{}
                                                  : std::vector<int64_t>{rows};
  writer.AddLazy(name + "_scale", DType::kF32, scale_shape,
                 [scales]() -> absl::StatusOr<std::vector<uint8_t>> {
                   return EncodeFloats(*scales, DType::kF32);
                 });
}

}  // namespace moe

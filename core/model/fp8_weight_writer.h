#ifndef MOE_CORE_MODEL_FP8_WEIGHT_WRITER_H_
#define MOE_CORE_MODEL_FP8_WEIGHT_WRITER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/checkpoint_writer.h"
#include "core/model/quantize.h"

namespace moe {

// Adds a [rows, cols] linear weight as F8_E4M3 codes `name` followed by its
// F32 scales `name + "_scale"` (shape [] per tensor, [rows] per channel).
// `values` is called when the checkpoint is written, once, so only one
// weight is held in memory at a time; its error fails the write.
void AddFp8Weight(CheckpointWriter& writer, const std::string& name,
                  int64_t rows, int64_t cols, ScaleGranularity granularity,
                  std::function<absl::StatusOr<std::vector<float>>()> values);

}  // namespace moe

#endif  // MOE_CORE_MODEL_FP8_WEIGHT_WRITER_H_

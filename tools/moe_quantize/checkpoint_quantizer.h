#ifndef MOE_TOOLS_MOE_QUANTIZE_CHECKPOINT_QUANTIZER_H_
#define MOE_TOOLS_MOE_QUANTIZE_CHECKPOINT_QUANTIZER_H_

#include <string>

#include "absl/status/status.h"
#include "core/model/quantize.h"

namespace moe {

// Converts a BF16 (or F16/F32) MoE checkpoint to FP8: attention and expert
// weights become F8_E4M3 with an F32 `<name>_scale` (per tensor or per output
// channel); the gate, embeddings, LM head and norms are copied unchanged.
// config.json gains the fp8 quantization_config; tokenizer files are copied.
absl::Status QuantizeCheckpoint(const std::string& input_directory,
                                const std::string& output_directory,
                                ScaleGranularity granularity, int num_shards);

}  // namespace moe

#endif  // MOE_TOOLS_MOE_QUANTIZE_CHECKPOINT_QUANTIZER_H_

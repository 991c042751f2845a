#ifndef MOE_TOOLS_MOE_MAKE_MODEL_RANDOM_MODEL_H_
#define MOE_TOOLS_MOE_MAKE_MODEL_RANDOM_MODEL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/model/model_config.h"
#include "core/model/quantize.h"

namespace moe {

struct RandomModelOptions {
  ModelConfig config;  // shape, architecture and weight_format
  uint64_t seed = 1;
  ScaleGranularity fp8_scales = ScaleGranularity::kPerTensor;
  int num_shards = 1;  // >1 writes model-0000i-of-0000n.safetensors + index
  // Existing tokenizer.model to copy; empty: train one on local text.
  std::string tokenizer;
  // Text files to train the tokenizer on; empty: /usr/share/common-licenses.
  std::vector<std::string> tokenizer_corpus;
};

// Writes a random checkpoint in the Hugging Face layout to `directory`:
// config.json, safetensors (BF16, or FP8 linear weights with their scales),
// tokenizer.model and tokenizer_config.json. Weights are scaled so that
// activations keep unit size through the layers and every expert receives
// traffic. The tokenizer (trained or given) must have exactly vocab_size
// pieces; a corpus too small to train that many is an error.
absl::Status WriteRandomModel(const RandomModelOptions& options,
                              const std::string& directory);

}  // namespace moe

#endif  // MOE_TOOLS_MOE_MAKE_MODEL_RANDOM_MODEL_H_

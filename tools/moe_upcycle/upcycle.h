#ifndef MOE_TOOLS_MOE_UPCYCLE_UPCYCLE_H_
#define MOE_TOOLS_MOE_UPCYCLE_UPCYCLE_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "core/model/model_config.h"
#include "core/model/quantize.h"
#include "tools/moe_upcycle/dense_model.h"

namespace moe {

struct UpcycleOptions {
  int num_experts = 16;
  Architecture architecture = Architecture::kSkyworkMoe;
  // kFp8: attention and expert weights in FP8 (the rest BF16); kFloat: every
  // tensor in `float_dtype`.
  WeightFormat format = WeightFormat::kFp8;
  DType float_dtype = DType::kBF16;  // F32 or BF16
  ScaleGranularity fp8_scales = ScaleGranularity::kPerChannel;
  // Relative standard deviation of each expert's perturbation:
  // w_e = w · (1 + noise · u), u uniform with unit variance; at most 0.5.
  double noise = 0.01;
  uint64_t seed = 1;
  int num_shards = 1;
};

// Turns a dense llama model into a mixture of experts the way Skywork-MoE
// was made from Skywork-13B: every layer's FFN becomes `num_experts` experts
// initialized from it (each perturbed by seeded noise so that experts differ
// and routing mistakes show in the logits) behind a seeded random gate
// scaled so that routing varies from token to token. Routing is top-2
// (top-1 with one expert) with renormalized weights, so with noise 0 the
// MoE computes exactly the dense model. Writes config.json, the safetensors
// and the tokenizer files into `directory`.
absl::Status Upcycle(const DenseModel& dense, const UpcycleOptions& options,
                     const std::string& directory);

}  // namespace moe

#endif  // MOE_TOOLS_MOE_UPCYCLE_UPCYCLE_H_

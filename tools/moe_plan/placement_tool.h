#ifndef MOE_TOOLS_MOE_PLAN_PLACEMENT_TOOL_H_
#define MOE_TOOLS_MOE_PLAN_PLACEMENT_TOOL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/model/model_config.h"
#include "core/placement/placement_plan.h"
#include "core/util/byte_size.h"

// What moe-plan reads and prints, apart from its flags.
namespace moe {

// Workers as "w0=24GiB,w1=24GiB,w7=12GiB@1.5": comma-separated
// ID=MEMORY[@SPEED] items, MEMORY as ParseByteSize reads it, SPEED a positive
// number (default 1).
absl::StatusOr<std::vector<WorkerSpec>> ParseWorkerSpecs(
    absl::string_view text);

// Bytes of one expert's weights (gate and up [intermediate x hidden], down
// [hidden x intermediate]): one byte a weight for FP8 plus float32 scales
// counted one per output channel, an upper bound for per-tensor scales too;
// float checkpoints count two bytes a weight (BF16/F16, as MoE models are
// released).
int64_t ExpertWeightBytes(const ModelConfig& config);

// Reads a JSON [layers][experts] list of routed token counts, row-major, or
// moe-admin load's report, which holds it under "load".
absl::StatusOr<std::vector<double>> ReadLoadMatrix(const std::string& path,
                                                   int num_layers,
                                                   int num_experts);

// A table of the plan: per worker its memory, the experts it holds (count,
// bytes, share of its memory) and its predicted time per layer against an
// even split of the layer's load by speed; then the slowest worker's time
// against the even split, over all layers and in the worst one. `load` as in
// PlannerInput (empty: uniform).
std::string FormatPlacementReport(const PlacementPlan& plan,
                                  const std::vector<double>& load);

}  // namespace moe

#endif  // MOE_TOOLS_MOE_PLAN_PLACEMENT_TOOL_H_

#ifndef MOE_TOOLS_MOE_PLAN_PROJECTION_REPORT_H_
#define MOE_TOOLS_MOE_PLAN_PROJECTION_REPORT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tools/moe_plan/throughput_projection.h"

// What moe-plan --project reads and prints, apart from its flags.
namespace moe {

// Batch sizes as --batches lists them: "1,8,32" (ProjectThroughput checks
// their range).
absl::StatusOr<std::vector<int>> ParseBatchSizes(absl::string_view text);

// The GPUs and settings, the router GPU's memory, then a table per batch
// size: step time and its parts in ms, tokens/s, the bound and whether the
// K/V cache fits; then how to read it.
std::string FormatProjection(const ProjectionInput& input,
                             const Projection& projection);

}  // namespace moe

#endif  // MOE_TOOLS_MOE_PLAN_PROJECTION_REPORT_H_

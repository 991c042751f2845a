#include "tools/moe_plan/projection_report.h"

#include <unordered_set>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tools/moe_plan/placement_tool.h"

namespace moe {
namespace {

std::string DescribeGpu(const GpuSpec& gpu) {
  return absl::StrFormat(
      "%s: %s, %.0f GB/s, FP8 %.1f / BF16 %.1f TFLOP/s, link %.1f GB/s",
      gpu.name, FormatBytes(gpu.memory_bytes), gpu.memory_bandwidth / 1e9,
      gpu.fp8_flops / 1e12, gpu.bf16_flops / 1e12, gpu.link_bandwidth / 1e9);
}

}  // namespace

absl::StatusOr<std::vector<int>> ParseBatchSizes(absl::string_view text) {
  std::vector<int> batches;
  for (absl::string_view item :
       absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    int batch = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(item), &batch)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--batches item \"", item, "\" is not a number"));
    }
    batches.push_back(batch);
  }
  return batches;
}

std::string FormatProjection(const ProjectionInput& input,
                             const Projection& projection) {
  std::string out = absl::StrFormat(
      "decode projection: context %d, memory bandwidth x %.2f, tensor "
      "FLOP/s x %.2f, %.0f us per layer\n",
      input.context, input.bandwidth_efficiency, input.compute_efficiency,
      input.layer_overhead_s * 1e6);
  std::unordered_set<std::string> described;
  for (const GpuSpec& gpu : input.gpus) {
    if (described.insert(gpu.name).second) {
      absl::StrAppend(&out, "GPU ", DescribeGpu(gpu), "\n");
    }
  }
  const int64_t per_sequence = projection.kv_bytes_per_sequence;
  absl::StrAppendFormat(
      &out,
      "router on %s: weights %s, experts %s, reserve %s; K/V cache %s a "
      "sequence: room for %d (%s)\n\n",
      projection.router_worker, FormatBytes(projection.router_weight_bytes),
      FormatBytes(projection.router_expert_bytes),
      FormatBytes(input.reserve_bytes), FormatBytes(per_sequence),
      projection.kv_room_bytes / per_sequence,
      FormatBytes(projection.kv_room_bytes));
  absl::StrAppendFormat(&out, "%6s %9s %9s %10s %8s %11s %9s %9s %8s\n",
                        "batch", "step ms", "router ms", "experts ms",
                        "link ms", "overhead ms", "tokens/s", "bound",
                        "KV fits");
  for (const StepProjection& step : projection.steps) {
    absl::StrAppendFormat(
        &out, "%6d %9.2f %9.2f %10.2f %8.2f %11.2f %9.0f %9s %8s\n", step.batch,
        step.step_s * 1e3, step.router_s * 1e3, step.experts_s * 1e3,
        step.link_s * 1e3, step.overhead_s * 1e3, step.tokens_per_s,
        StepBoundName(step.bound), step.kv_fits ? "yes" : "no");
  }
  return out +
         "\nstep = router (attention, K/V cache, gates, LM head) + experts "
         "(slowest worker)\n+ link (activations through the router's GPU) + "
         "overhead, run one after another;\nbound: the largest of the time "
         "on memory-bound stages, compute-bound stages,\nthe link and the "
         "overhead; KV fits: the batch's K/V cache fits on the router's "
         "GPU\n";
}

}  // namespace moe

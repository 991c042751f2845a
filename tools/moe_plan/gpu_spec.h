#ifndef MOE_TOOLS_MOE_PLAN_GPU_SPEC_H_
#define MOE_TOOLS_MOE_PLAN_GPU_SPEC_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace moe {

// The figures of one GPU that the throughput projection uses: datasheet
// peaks, except `link`, which is what a transfer achieves.
struct GpuSpec {
  std::string name;
  int64_t memory_bytes = 0;
  double memory_bandwidth = 0;  // bytes/s, peak
  double fp8_flops = 0;         // dense tensor FLOP/s, peak
  double bf16_flops = 0;        // dense tensor FLOP/s, peak
  // Bytes/s one way over the link the GPU exchanges activations on (PCIe
  // through the host, or NVLink), as achieved.
  double link_bandwidth = 0;
};

// A preset ("rtx4090", "h100" or "h200") with optional overrides, as
// --gpu reads it: "rtx4090,link=12GB,bandwidth=900GB,fp8=300,bf16=150,
// memory=24GiB". memory, bandwidth and link are sizes as ParseByteSize reads
// them (bandwidths per second, an optional "/s" allowed); fp8 and bf16 are
// TFLOP/s.
absl::StatusOr<GpuSpec> ParseGpuSpec(absl::string_view text);

// INVALID_ARGUMENT naming the --gpu key of the first figure that is not a
// positive finite number.
absl::Status ValidateGpuSpec(const GpuSpec& gpu);

}  // namespace moe

#endif  // MOE_TOOLS_MOE_PLAN_GPU_SPEC_H_

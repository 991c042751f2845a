#include "tools/moe_plan/gpu_spec.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/util/status_macros.h"
#include "tools/moe_plan/placement_tool.h"

namespace moe {
namespace {

constexpr int64_t kMiB = int64_t{1} << 20;
constexpr double kGB = 1e9;
constexpr double kTera = 1e12;

// NVLink 4 (H100 and H200 SXM): 450 GB/s each way; a transfer is assumed to
// reach 80% of it.
constexpr double kNvlink4Achieved = 0.8 * 450 * kGB;

// Memory as nvidia-smi reports it (a little below the marketed size). Tensor
// rates are dense (no 2:4 sparsity) with FP32 accumulation, as LLM kernels
// accumulate.
const GpuSpec kPresets[] = {
    // GeForce RTX 4090 (Ada whitepaper): 24 GB GDDR6X at 1008 GB/s; FP8 330.3
    // and BF16 165.2 TFLOP/s with FP32 accumulate (FP16 accumulate doubles
    // FP8 to 660.6). No NVLink, and GeForce cards do not talk peer to peer:
    // activations cross PCIe 4.0 x16 through host memory, 31.5 GB/s each way
    // on paper, about 25 GB/s achieved.
    {"rtx4090", 24564 * kMiB, 1008 * kGB, 330.3 * kTera, 165.2 * kTera,
     25 * kGB},
    // H100 SXM5: 80 GB HBM3 at 3.35 TB/s; FP8 1978.9 and BF16 989.4 TFLOP/s.
    {"h100", 81559 * kMiB, 3350 * kGB, 1978.9 * kTera, 989.4 * kTera,
     kNvlink4Achieved},
    // H200 SXM: 141 GB HBM3e at 4.8 TB/s; the H100's tensor cores.
    {"h200", 143771 * kMiB, 4800 * kGB, 1978.9 * kTera, 989.4 * kTera,
     kNvlink4Achieved},
};

absl::StatusOr<double> ParseBandwidth(absl::string_view text) {
  absl::ConsumeSuffix(&text, "/s");
  MOE_ASSIGN_OR_RETURN(const int64_t bytes, ParseByteSize(text));
  return static_cast<double>(bytes);
}

absl::StatusOr<double> ParseTeraflops(absl::string_view text) {
  double tflops = 0;
  if (!absl::SimpleAtod(text, &tflops)) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" is not a number of TFLOP/s"));
  }
  return tflops * kTera;
}

absl::Status Override(absl::string_view key, absl::string_view value,
                      GpuSpec& gpu) {
  if (key == "memory") {
    MOE_ASSIGN_OR_RETURN(gpu.memory_bytes, ParseByteSize(value));
  } else if (key == "bandwidth") {
    MOE_ASSIGN_OR_RETURN(gpu.memory_bandwidth, ParseBandwidth(value));
  } else if (key == "link") {
    MOE_ASSIGN_OR_RETURN(gpu.link_bandwidth, ParseBandwidth(value));
  } else if (key == "fp8") {
    MOE_ASSIGN_OR_RETURN(gpu.fp8_flops, ParseTeraflops(value));
  } else if (key == "bf16") {
    MOE_ASSIGN_OR_RETURN(gpu.bf16_flops, ParseTeraflops(value));
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown key \"", key,
                     "\" (use memory, bandwidth, link, fp8 or bf16)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<GpuSpec> ParseGpuSpec(absl::string_view text) {
  const std::vector<absl::string_view> items =
      absl::StrSplit(text, ',', absl::SkipWhitespace());
  const std::string name =
      items.empty()
          ? ""
          : absl::AsciiStrToLower(absl::StripAsciiWhitespace(items.front()));
  const auto* preset =
      std::find_if(std::begin(kPresets), std::end(kPresets),
                   [&](const GpuSpec& known) { return known.name == name; });
  if (preset == std::end(kPresets)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--gpu: unknown GPU \"", name,
                     "\" (presets: rtx4090, h100, h200; then optional "
                     "KEY=VALUE overrides)"));
  }
  GpuSpec gpu = *preset;
  for (auto item = std::next(items.begin()); item != items.end(); ++item) {
    const std::pair<absl::string_view, absl::string_view> pair =
        absl::StrSplit(*item, absl::MaxSplits('=', 1));
    const absl::Status status =
        Override(absl::StripAsciiWhitespace(pair.first),
                 absl::StripAsciiWhitespace(pair.second), gpu);
    if (!status.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--gpu item \"", *item, "\": ", status.message()));
    }
  }
  MOE_RETURN_IF_ERROR(ValidateGpuSpec(gpu));
  return gpu;
}

absl::Status ValidateGpuSpec(const GpuSpec& gpu) {
  const std::pair<const char*, double> figures[] = {
      {"memory", static_cast<double>(gpu.memory_bytes)},
      {"bandwidth", gpu.memory_bandwidth},
      {"link", gpu.link_bandwidth},
      {"fp8", gpu.fp8_flops},
      {"bf16", gpu.bf16_flops}};
  for (const auto& [key, value] : figures) {
    if (!std::isfinite(value) || value <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--gpu ", gpu.name, ": ", key,
                       " must be a positive number, got ", value));
    }
  }
  return absl::OkStatus();
}

}  // namespace moe

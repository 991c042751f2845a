// moe-quantize: BF16 MoE checkpoint in, FP8 checkpoint out.
#include <iostream>

#include "absl/flags/flag.h"
#include "core/util/command_line.h"
#include "tools/moe_quantize/checkpoint_quantizer.h"

ABSL_FLAG(std::string, model, "", "input checkpoint directory (BF16)");
ABSL_FLAG(std::string, out, "", "output directory");
ABSL_FLAG(std::string, scales, "tensor",
          "tensor (one scale per weight) or channel (one per output row)");
ABSL_FLAG(int, shards, 1, "number of safetensors files to write");

int main(int argc, char** argv) {
  moe::ParseCommandLine(
      argc, argv,
      "moe-quantize --model IN --out OUT [--scales tensor|channel]");
  const std::string scales = absl::GetFlag(FLAGS_scales);
  if (absl::GetFlag(FLAGS_model).empty() || absl::GetFlag(FLAGS_out).empty() ||
      (scales != "tensor" && scales != "channel")) {
    std::cerr
        << "moe-quantize: need --model, --out and --scales tensor|channel\n";
    return 2;
  }
  const absl::Status status = moe::QuantizeCheckpoint(
      absl::GetFlag(FLAGS_model), absl::GetFlag(FLAGS_out),
      scales == "tensor" ? moe::ScaleGranularity::kPerTensor
                         : moe::ScaleGranularity::kPerChannel,
      absl::GetFlag(FLAGS_shards));
  if (!status.ok()) {
    std::cerr << "moe-quantize: " << status.message() << "\n";
    return 1;
  }
  std::cout << absl::GetFlag(FLAGS_out) << "\n";
  return 0;
}

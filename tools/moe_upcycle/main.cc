// moe-upcycle: a dense llama model (GGUF file or HF directory) in, a
// mixture-of-experts checkpoint out.
#include <iostream>

#include "absl/flags/flag.h"
#include "core/util/command_line.h"
#include "tools/moe_upcycle/dense_model.h"
#include "tools/moe_upcycle/upcycle.h"

ABSL_FLAG(std::string, model, "",
          "dense llama model: a .gguf file or a Hugging Face directory");
ABSL_FLAG(std::string, out, "", "output directory");
ABSL_FLAG(int, experts, 16, "experts per layer");
ABSL_FLAG(std::string, layout, "skywork",
          "skywork (Skywork-MoE, normalized gate logits) or mixtral");
ABSL_FLAG(std::string, dtype, "fp8",
          "fp8 (attention and experts FP8, the rest BF16), bf16 or f32");
ABSL_FLAG(std::string, scales, "channel",
          "FP8 scales: channel (one per output row) or tensor");
ABSL_FLAG(double, noise, 0.01,
          "relative standard deviation of each expert's perturbation");
ABSL_FLAG(uint64_t, seed, 1, "seed of the noise and the gates");
ABSL_FLAG(int, shards, 1, "number of safetensors files to write");

namespace {

int Fail(const std::string& message) {
  std::cerr << "moe-upcycle: " << message << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  moe::ParseCommandLine(
      argc, argv,
      "moe-upcycle --model MODEL.gguf|DIR --out DIR [--experts 16] "
      "[--layout skywork|mixtral] [--dtype fp8|bf16|f32] [--noise 0.01]");
  const std::string layout = absl::GetFlag(FLAGS_layout);
  const std::string dtype = absl::GetFlag(FLAGS_dtype);
  const std::string scales = absl::GetFlag(FLAGS_scales);
  if (absl::GetFlag(FLAGS_model).empty() || absl::GetFlag(FLAGS_out).empty()) {
    return Fail("need --model and --out");
  }
  if (layout != "skywork" && layout != "mixtral") {
    return Fail("--layout must be skywork or mixtral, got " + layout);
  }
  if (dtype != "fp8" && dtype != "bf16" && dtype != "f32") {
    return Fail("--dtype must be fp8, bf16 or f32, got " + dtype);
  }
  if (scales != "channel" && scales != "tensor") {
    return Fail("--scales must be channel or tensor, got " + scales);
  }
  moe::UpcycleOptions options;
  options.num_experts = absl::GetFlag(FLAGS_experts);
  options.architecture = layout == "skywork" ? moe::Architecture::kSkyworkMoe
                                             : moe::Architecture::kMixtral;
  options.format =
      dtype == "fp8" ? moe::WeightFormat::kFp8 : moe::WeightFormat::kFloat;
  options.float_dtype = dtype == "f32" ? moe::DType::kF32 : moe::DType::kBF16;
  options.fp8_scales = scales == "channel" ? moe::ScaleGranularity::kPerChannel
                                           : moe::ScaleGranularity::kPerTensor;
  options.noise = absl::GetFlag(FLAGS_noise);
  options.seed = absl::GetFlag(FLAGS_seed);
  options.num_shards = absl::GetFlag(FLAGS_shards);

  absl::StatusOr<std::unique_ptr<moe::DenseModel>> dense =
      moe::OpenDenseModel(absl::GetFlag(FLAGS_model));
  if (!dense.ok()) return Fail(std::string(dense.status().message()));
  const absl::Status status =
      moe::Upcycle(**dense, options, absl::GetFlag(FLAGS_out));
  if (!status.ok()) return Fail(std::string(status.message()));
  std::cout << absl::GetFlag(FLAGS_out) << "\n";
  return 0;
}

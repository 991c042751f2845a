// The router's GPU forward pass in a build without CUDA.
#include "absl/strings/str_cat.h"
#include "engine/gpu_model_runner.h"

namespace moe {

absl::StatusOr<std::unique_ptr<ModelRunner>> NewGpuModelRunner(
    const ModelWeights&, ExpertDispatch&, int device,
    const ModelRunnerOptions&) {
  return absl::FailedPreconditionError(absl::StrCat(
      "--router-device ", device, ": this build has no CUDA support"));
}

}  // namespace moe

// NewGpuExpertCompute in a build without CUDA.
#include "absl/strings/str_cat.h"
#include "expert_worker/expert_compute.h"

namespace moe {

absl::StatusOr<std::unique_ptr<ExpertCompute>> NewGpuExpertCompute(
    int device, const ModelConfig&, bool) {
  return absl::FailedPreconditionError(
      absl::StrCat("--device ", device,
                   ": this build has no CUDA (rebuild where nvcc is found); "
                   "leave --device out to compute on the CPU"));
}

}  // namespace moe

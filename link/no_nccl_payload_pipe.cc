// NCCL links in a build without CUDA or NCCL.
#include "link/nccl_payload_pipe.h"

namespace moe {
namespace {

absl::Status NoNccl() {
  return absl::FailedPreconditionError(
      "NCCL links need a build with CUDA and NCCL (this one lacks them)");
}

}  // namespace

absl::StatusOr<std::string> NewNcclLinkId() { return NoNccl(); }

absl::StatusOr<std::unique_ptr<PayloadPipe>> ConnectNcclPayloadPipe(
    int, int, const std::string&, const std::string&, absl::Duration,
    std::function<bool()>) {
  return NoNccl();
}

}  // namespace moe

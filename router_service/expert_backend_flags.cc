#include "router_service/expert_backend_flags.h"

#include <string>

#include "absl/flags/flag.h"
#include "core/util/status_macros.h"

ABSL_FLAG(std::string, plan, "",
          "placement plan JSON; with --workers, experts run on the workers");
ABSL_FLAG(std::string, workers, "",
          "expert workers as id=host:port,... (every worker of the plan)");
ABSL_FLAG(std::string, activation_dtype, "fp32",
          "activations to and from workers: fp32 (exact) or bf16 (half the "
          "bytes)");
ABSL_FLAG(int, worker_timeout_ms, 10000,
          "a worker call not answered in this time fails its requests with "
          "DEADLINE_EXCEEDED");
ABSL_FLAG(std::string, activation_link, "rpc",
          "how activations reach the workers: rpc (one Compute call per "
          "layer and worker), stream (messages on one gRPC stream per "
          "worker) or nccl (NCCL between GPUs; the stream for CPU workers)");
ABSL_FLAG(int, nccl_device, -1,
          "the router's GPU for --activation-link nccl (CUDA device index)");
ABSL_FLAG(int, worker_startup_timeout_ms, 60000,
          "how long to wait at start for the workers to answer");

namespace moe {

absl::StatusOr<ExpertBackendOptions> ExpertBackendOptionsFromFlags() {
  ExpertBackendOptions options;
  options.plan_path = absl::GetFlag(FLAGS_plan);
  options.workers = absl::GetFlag(FLAGS_workers);
  MOE_ASSIGN_OR_RETURN(
      options.remote.activation_dtype,
      ParseActivationDType(absl::GetFlag(FLAGS_activation_dtype)));
  options.remote.call_timeout =
      absl::Milliseconds(absl::GetFlag(FLAGS_worker_timeout_ms));
  MOE_ASSIGN_OR_RETURN(
      options.remote.link,
      ParseActivationLinkKind(absl::GetFlag(FLAGS_activation_link)));
  options.remote.nccl_device = absl::GetFlag(FLAGS_nccl_device);
  if (options.remote.link == ActivationLinkKind::kNccl &&
      options.remote.nccl_device < 0) {
    return absl::InvalidArgumentError(
        "--activation-link nccl needs --nccl-device N, the router's GPU");
  }
  options.startup_timeout =
      absl::Milliseconds(absl::GetFlag(FLAGS_worker_startup_timeout_ms));
  return options;
}

}  // namespace moe

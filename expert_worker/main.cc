// moe-expert-worker: holds the experts a placement plan gives it and computes
// them for the router.
#include <iostream>
#include <set>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/model/model_config.h"
#include "core/placement/placement_plan.h"
#include "core/util/byte_size.h"
#include "core/util/command_line.h"
#include "core/util/status_macros.h"
#include "core/util/termination_signal.h"
#include "core/util/thread_pool.h"
#include "expert_worker/compute_queue.h"
#include "expert_worker/expert_compute.h"
#include "expert_worker/expert_store.h"
#include "expert_worker/link_service.h"
#include "expert_worker/worker_metrics.h"
#include "expert_worker/worker_service.h"
#include "metrics/metrics_endpoint.h"
#include "rpc/server_flags.h"
#include "rpc/server_runner.h"

ABSL_FLAG(std::string, admin_identities, "router,admin",
          "over TLS, the client certificate names (CN) that may load and "
          "unload experts; without TLS only loopback clients may");
ABSL_FLAG(std::string, model, "", "checkpoint directory (required)");
ABSL_FLAG(std::string, plan, "",
          "placement plan JSON: start with the experts it gives this worker; "
          "without it, start empty (a worker joining a running cluster)");
ABSL_FLAG(std::string, worker_id, "",
          "this worker's id (required; in the plan when there is one)");
ABSL_FLAG(std::string, memory, "",
          "budget for expert weights (bytes, or e.g. 2GiB, 1.5GB); required "
          "without --plan, which otherwise sets it");
ABSL_FLAG(std::string, listen, "127.0.0.1:0",
          "host:port to serve on; port 0 picks a free one (printed)");
ABSL_FLAG(int, threads, 0, "compute threads; 0: one per core");
ABSL_FLAG(int, device, -1,
          "GPU to hold and compute the experts on (CUDA device index); "
          "-1: the CPU");
ABSL_FLAG(std::string, expert_precision, "fp8",
          "products on a GPU: fp8 (FP8 activations, where the GPU has FP8 "
          "tensor cores) or bf16 (weights dequantized to BF16)");
ABSL_FLAG(int, queue_capacity, 64,
          "Compute calls waiting at most; beyond it RESOURCE_EXHAUSTED");

namespace {

// What the worker starts with: its share of a plan, or nothing.
struct StartingShare {
  std::set<moe::ExpertKey> experts;
  int64_t memory_bytes = 0;
  int placement_version = 0;
  std::string model;
};

absl::StatusOr<StartingShare> ReadStartingShare(
    const std::string& worker_id, const moe::ModelConfig& config) {
  StartingShare share;
  const std::string memory = absl::GetFlag(FLAGS_memory);
  if (!memory.empty()) {
    absl::StatusOr<int64_t> bytes = moe::ParseByteSize(memory);
    if (!bytes.ok() || *bytes <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--memory: ", bytes.ok() ? "the budget must be positive"
                                                : bytes.status().message()));
    }
    share.memory_bytes = *bytes;
  }
  const std::string plan_path = absl::GetFlag(FLAGS_plan);
  if (plan_path.empty()) {
    if (share.memory_bytes == 0) {
      return absl::InvalidArgumentError(
          "--memory: a worker started without --plan needs a budget for the "
          "experts it will be given");
    }
    return share;
  }
  MOE_ASSIGN_OR_RETURN(moe::PlacementPlan plan, moe::ReadPlan(plan_path));
  MOE_RETURN_IF_ERROR(
      moe::CheckPlanMatchesModel(plan, config.num_layers, config.num_experts));
  const int index = plan.WorkerIndex(worker_id);
  if (index < 0) {
    return absl::NotFoundError(absl::StrCat("--worker-id: \"", worker_id,
                                            "\" is not a worker of the plan"));
  }
  const std::vector<moe::ExpertKey> held = plan.ExpertsOf(index);
  share.experts.insert(held.begin(), held.end());
  if (share.memory_bytes == 0) {
    share.memory_bytes = plan.workers[index].memory_bytes;
  }
  share.placement_version = plan.version;
  share.model = plan.model;
  return share;
}

absl::Status Serve() {
  const std::string model = absl::GetFlag(FLAGS_model);
  const std::string worker_id = absl::GetFlag(FLAGS_worker_id);
  if (model.empty() || worker_id.empty()) {
    return absl::InvalidArgumentError("--model and --worker-id are required");
  }
  // Only the router (and an operator's tools) may call it: clients present
  // a certificate of the cluster's CA when it serves with TLS.
  MOE_ASSIGN_OR_RETURN(
      moe::ServeOptions serve_options,
      moe::ServeOptionsFromFlags(absl::GetFlag(FLAGS_listen),
                                 moe::ClientCertificates::kRequired));
  MOE_ASSIGN_OR_RETURN(const moe::ModelConfig config,
                       moe::LoadModelConfig(model));
  MOE_ASSIGN_OR_RETURN(const StartingShare share,
                       ReadStartingShare(worker_id, config));
  moe::ThreadPool pool(absl::GetFlag(FLAGS_threads));
  std::unique_ptr<moe::ExpertCompute> compute;
  if (absl::GetFlag(FLAGS_device) < 0) {
    compute = moe::NewCpuExpertCompute(pool);
  } else {
    const std::string precision = absl::GetFlag(FLAGS_expert_precision);
    if (precision != "fp8" && precision != "bf16") {
      return absl::InvalidArgumentError(absl::StrCat(
          "--expert-precision: \"", precision, "\" is not fp8 or bf16"));
    }
    MOE_ASSIGN_OR_RETURN(
        compute, moe::NewGpuExpertCompute(absl::GetFlag(FLAGS_device), config,
                                          precision == "fp8"));
  }
  MOE_ASSIGN_OR_RETURN(
      std::unique_ptr<moe::ExpertStore> store,
      moe::ExpertStore::Open(model, share.experts, *compute, share.memory_bytes,
                             share.placement_version));
  moe::WorkerIdentity identity{worker_id, compute->device(), share.memory_bytes,
                               share.model};
  // The metrics outlive the queue that reports to them.
  moe::WorkerMetrics metrics(identity, *store);
  moe::ComputeQueue queue(
      *store, absl::GetFlag(FLAGS_queue_capacity),
      [&metrics](const moe::LayerRun& run) { metrics.Observe(run); });
  metrics.set_queue(&queue);
  MOE_ASSIGN_OR_RETURN(
      const std::unique_ptr<moe::MetricsEndpoint> metrics_endpoint,
      moe::MetricsEndpointFromFlags("moe-expert-worker",
                                    metrics.collectables()));
  const moe::AdminAccess admin(absl::StrSplit(
      absl::GetFlag(FLAGS_admin_identities), ',', absl::SkipWhitespace()));
  moe::ExpertWorkerService service(identity, *store, queue, admin);
  const int device = absl::GetFlag(FLAGS_device);
  moe::ExpertLinkService links(
      identity, store->config(), queue,
      device < 0 ? nullptr : moe::ExpertLinkService::NcclJoinerFor(device));
  std::cerr << "worker " << worker_id << " on " << compute->device() << ": "
            << share.experts.size() << " experts, " << store->BytesHeld()
            << " bytes" << std::endl;
  // NOT_SERVING while it loads experts.
  serve_options.serving = [&service] { return !service.loading(); };
  return moe::ServeUntilTerminated({&service, &links},
                                   absl::GetFlag(FLAGS_listen),
                                   "moe-expert-worker", serve_options);
}

}  // namespace

int main(int argc, char** argv) {
  moe::BlockTerminationSignals();
  moe::ParseCommandLine(
      argc, argv,
      "Serves the experts a placement plan assigns to one worker.\n"
      "usage: moe-expert-worker --model DIR --worker-id ID "
      "(--plan FILE | --memory SIZE) [--listen 127.0.0.1:PORT] "
      "[--device N]");
  const absl::Status status = Serve();
  if (!status.ok()) {
    std::cerr << "moe-expert-worker: " << status.message() << std::endl;
    return 1;
  }
  return 0;
}

#include "router_service/expert_backend.h"

#include "absl/strings/str_cat.h"
#include "core/placement/placement_plan.h"
#include "core/util/status_macros.h"
#include "engine/local_expert_dispatch.h"

namespace moe {

absl::StatusOr<v1::ActivationDType> ParseActivationDType(
    const std::string& name) {
  if (name == "fp32") return v1::ACTIVATION_DTYPE_FP32;
  if (name == "bf16") return v1::ACTIVATION_DTYPE_BF16;
  return absl::InvalidArgumentError(
      absl::StrCat("--activation-dtype: \"", name, "\" is not fp32 or bf16"));
}

absl::StatusOr<ExpertBackend> OpenExpertBackend(
    const std::string& model_dir, const ExpertBackendOptions& options,
    ThreadPool& pool) {
  ExpertBackend backend;
  if (options.plan_path.empty() != options.workers.empty()) {
    return absl::InvalidArgumentError(
        "--plan and --workers go together: both for expert workers, neither "
        "for experts in process");
  }
  if (options.plan_path.empty()) {
    MOE_ASSIGN_OR_RETURN(backend.weights, ModelWeights::Load(model_dir));
    backend.dispatch =
        std::make_unique<LocalExpertDispatch>(*backend.weights, pool);
    return backend;
  }
  MOE_ASSIGN_OR_RETURN(PlacementPlan plan, ReadPlan(options.plan_path));
  WeightSelection dense_only;
  dense_only.expert_filter = [](int, int) { return false; };
  MOE_ASSIGN_OR_RETURN(backend.weights,
                       ModelWeights::Load(model_dir, dense_only));
  const ModelConfig& config = backend.weights->config();
  MOE_RETURN_IF_ERROR(
      CheckPlanMatchesModel(plan, config.num_layers, config.num_experts));
  MOE_ASSIGN_OR_RETURN(std::vector<WorkerEndpoint> endpoints,
                       ParseWorkerEndpoints(options.workers));
  MOE_ASSIGN_OR_RETURN(std::unique_ptr<GrpcExpertDispatch> remote,
                       GrpcExpertDispatch::Connect(plan, config.hidden_size,
                                                   endpoints, options.remote));
  MOE_RETURN_IF_ERROR(remote->AwaitWorkers(options.startup_timeout));
  backend.remote = remote.get();
  backend.dispatch = std::move(remote);
  return backend;
}

}  // namespace moe

#ifndef MOE_ROUTER_SERVICE_EXPERT_BACKEND_H_
#define MOE_ROUTER_SERVICE_EXPERT_BACKEND_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/model/model_weights.h"
#include "core/util/thread_pool.h"
#include "engine/expert_dispatch.h"
#include "router_service/grpc_expert_dispatch.h"

namespace moe {

// Where the experts run: in process (no plan, no workers), or on the expert
// workers of a plan.
struct ExpertBackendOptions {
  std::string plan_path;  // placement plan JSON
  std::string workers;    // "id=host:port,..." for every worker of the plan
  GrpcExpertDispatch::Options remote;
  absl::Duration startup_timeout = absl::Seconds(60);  // for workers to answer
};

// The weights a router needs and the dispatch of its experts.
struct ExpertBackend {
  std::unique_ptr<ModelWeights> weights;  // all, or everything but experts
  std::unique_ptr<ExpertDispatch> dispatch;
  GrpcExpertDispatch* remote = nullptr;  // set when workers hold the experts
};

// Loads the model for the chosen backend; with workers, waits until they
// answer and checks they serve the plan. A plan without workers (or the
// reverse), or a plan for another shape of model, is INVALID_ARGUMENT.
absl::StatusOr<ExpertBackend> OpenExpertBackend(
    const std::string& model_dir, const ExpertBackendOptions& options,
    ThreadPool& pool);

// Parses "fp32" or "bf16" (the --activation-dtype flag).
absl::StatusOr<v1::ActivationDType> ParseActivationDType(
    const std::string& name);

}  // namespace moe

#endif  // MOE_ROUTER_SERVICE_EXPERT_BACKEND_H_

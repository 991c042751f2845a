#include "router_service/admin_rpc_service.h"

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"
#include "nlohmann/json.hpp"
#include "rpc/grpc_status.h"

namespace moe {

RouterAdminService::~RouterAdminService() {
  change_.Stop();  // a change in flight ends at its next phase
  std::lock_guard<std::mutex> lock(mutex_);
  for (Aside& aside : asides_) aside.thread.join();
}

grpc::ServerUnaryReactor* RouterAdminService::RunAside(
    grpc::CallbackServerContext* context, std::function<absl::Status()> work) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (absl::Status allowed = admin_.Check(*context, "moe.v1.RouterAdmin");
      !allowed.ok()) {
    reactor->Finish(ToGrpcStatus(allowed));
    return reactor;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  std::erase_if(asides_, [](Aside& aside) {
    if (!aside.done->load()) return false;
    aside.thread.join();
    return true;
  });
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::thread thread([reactor, done, work = std::move(work)] {
    reactor->Finish(ToGrpcStatus(work()));
    done->store(true);
  });
  asides_.push_back({std::move(thread), std::move(done)});
  return reactor;
}

absl::StatusOr<std::vector<double>> RouterAdminService::Load(
    int window_seconds) const {
  if (window_seconds < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("window_seconds must be >= 0, got ", window_seconds));
  }
  const LoadWindow::Load load =
      load_.Over(absl::Seconds(window_seconds == 0 ? 60 : window_seconds));
  std::vector<double> routed(load.counts.routed_tokens.begin(),
                             load.counts.routed_tokens.end());
  for (double count : routed) {
    if (count > 0) return routed;
  }
  return std::vector<double>();  // nothing routed: plan for a uniform load
}

grpc::ServerUnaryReactor* RouterAdminService::ApplyPlan(
    grpc::CallbackServerContext* context, const v1::ApplyPlanRequest* request,
    v1::PlanChange* reply) {
  return RunAside(context, [this, request, reply]() -> absl::Status {
    const nlohmann::json json =
        nlohmann::json::parse(request->plan_json(), nullptr, false);
    if (json.is_discarded()) {
      return absl::InvalidArgumentError("plan_json: not valid JSON");
    }
    MOE_ASSIGN_OR_RETURN(const PlacementPlan plan,
                         PlanFromJson(json, "plan_json"));
    MOE_ASSIGN_OR_RETURN(*reply, change_.Apply(plan));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* RouterAdminService::Rebalance(
    grpc::CallbackServerContext* context, const v1::RebalanceRequest* request,
    v1::PlanChange* reply) {
  return RunAside(context, [this, request, reply]() -> absl::Status {
    MOE_ASSIGN_OR_RETURN(const std::vector<double> load,
                         Load(request->window_seconds()));
    MOE_ASSIGN_OR_RETURN(*reply, change_.Rebalance(load));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* RouterAdminService::AddWorker(
    grpc::CallbackServerContext* context, const v1::AddWorkerRequest* request,
    v1::WorkerDescription* reply) {
  return RunAside(context, [this, request, reply]() -> absl::Status {
    MOE_ASSIGN_OR_RETURN(
        *reply, change_.AddWorker({request->worker_id(), request->address()}));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* RouterAdminService::DrainWorker(
    grpc::CallbackServerContext* context, const v1::DrainWorkerRequest* request,
    v1::PlanChange* reply) {
  return RunAside(context, [this, request, reply]() -> absl::Status {
    MOE_ASSIGN_OR_RETURN(const std::vector<double> load,
                         Load(request->window_seconds()));
    MOE_ASSIGN_OR_RETURN(*reply, change_.Drain(request->worker_id(), load));
    return absl::OkStatus();
  });
}

}  // namespace moe

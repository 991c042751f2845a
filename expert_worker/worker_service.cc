#include "expert_worker/worker_service.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "expert_worker/compute_request.h"
#include "rpc/grpc_status.h"

namespace moe {
namespace {

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context,
                                    const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

std::vector<ExpertKey> Keys(const v1::ExpertSet& set) {
  std::vector<ExpertKey> keys;
  for (const v1::ExpertId& id : set.experts()) {
    keys.emplace_back(id.layer(), id.expert());
  }
  return keys;
}

}  // namespace

void ExpertWorkerService::FillDescription(v1::WorkerDescription* reply) const {
  reply->set_worker_id(identity_.id);
  reply->set_device(identity_.device);
  reply->set_memory_budget_bytes(identity_.memory_budget_bytes);
  reply->set_expert_bytes_held(store_.BytesHeld());
  for (const auto& [layer, expert] : store_.Held()) {
    v1::ExpertId* id = reply->add_experts();
    id->set_layer(layer);
    id->set_expert(expert);
  }
  reply->set_placement_version(store_.placement_version());
  reply->set_model(identity_.model);
  reply->set_hidden_size(store_.config().hidden_size);
  reply->set_queue_capacity(queue_.capacity());
  const DeviceMemoryReport memory = store_.compute().Memory();
  reply->set_device_memory_free_bytes(memory.free_bytes);
  reply->set_device_memory_total_bytes(memory.total_bytes);
}

grpc::ServerUnaryReactor* ExpertWorkerService::Describe(
    grpc::CallbackServerContext* context, const v1::DescribeRequest*,
    v1::WorkerDescription* reply) {
  FillDescription(reply);
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* ExpertWorkerService::LoadExperts(
    grpc::CallbackServerContext* context, const v1::ExpertSet* request,
    v1::WorkerDescription* reply) {
  if (absl::Status allowed = admin_.Check(*context, "LoadExperts");
      !allowed.ok()) {
    return FinishNow(context, allowed);
  }
  loading_.fetch_add(1);
  const absl::Status status =
      store_.Load(Keys(*request), request->placement_version());
  loading_.fetch_sub(1);
  if (status.ok()) FillDescription(reply);
  return FinishNow(context, status);
}

grpc::ServerUnaryReactor* ExpertWorkerService::UnloadExperts(
    grpc::CallbackServerContext* context, const v1::ExpertSet* request,
    v1::WorkerDescription* reply) {
  if (absl::Status allowed = admin_.Check(*context, "UnloadExperts");
      !allowed.ok()) {
    return FinishNow(context, allowed);
  }
  const absl::Status status = store_.Unload(Keys(*request));
  if (status.ok()) FillDescription(reply);
  return FinishNow(context, status);
}

grpc::ServerUnaryReactor* ExpertWorkerService::Compute(
    grpc::CallbackServerContext* context, const v1::ComputeRequest* request,
    v1::ComputeResponse* reply) {
  absl::StatusOr<ComputeTask> task =
      MakeComputeTask(*request, store_, identity_.id);
  if (!task.ok()) return FinishNow(context, task.status());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  task->abandoned = [context] {
    return context->IsCancelled() ||
           context->deadline() < std::chrono::system_clock::now();
  };
  const int64_t hidden = store_.config().hidden_size;
  task->done = [reactor, request, reply, hidden](absl::Status status,
                                                 std::vector<float> out,
                                                 ComputeStats stats) {
    if (status.ok()) FillComputeResponse(*request, out, hidden, stats, reply);
    reactor->Finish(ToGrpcStatus(status));
  };
  if (absl::Status queued = queue_.Submit(std::move(*task)); !queued.ok()) {
    reactor->Finish(ToGrpcStatus(queued));
  }
  return reactor;
}

}  // namespace moe

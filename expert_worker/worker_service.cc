#include "expert_worker/worker_service.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "protos/grpc_status.h"
#include "protos/tensor_codec.h"

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
  reply->set_placement_version(identity_.placement_version);
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
  const absl::Status status = store_.Load(Keys(*request));
  if (status.ok()) FillDescription(reply);
  return FinishNow(context, status);
}

grpc::ServerUnaryReactor* ExpertWorkerService::UnloadExperts(
    grpc::CallbackServerContext* context, const v1::ExpertSet* request,
    v1::WorkerDescription* reply) {
  const absl::Status status = store_.Unload(Keys(*request));
  if (status.ok()) FillDescription(reply);
  return FinishNow(context, status);
}

absl::StatusOr<ComputeTask> ExpertWorkerService::MakeTask(
    const v1::ComputeRequest& request) const {
  const ModelConfig& config = store_.config();
  if (request.layer() < 0 || request.layer() >= config.num_layers) {
    return absl::InvalidArgumentError(absl::StrCat("layer: ", request.layer(),
                                                   " is outside [0, ",
                                                   config.num_layers, ")"));
  }
  if (request.placement_version() != 0 &&
      request.placement_version() != identity_.placement_version) {
    return absl::FailedPreconditionError(
        absl::StrCat("placement_version: the router uses plan version ",
                     request.placement_version(), ", worker ", identity_.id,
                     " holds version ", identity_.placement_version));
  }
  const v1::ActivationDType output = request.output_dtype();
  if (output != v1::ACTIVATION_DTYPE_UNSPECIFIED &&
      output != v1::ACTIVATION_DTYPE_FP32 &&
      output != v1::ACTIVATION_DTYPE_BF16) {
    return absl::InvalidArgumentError(
        absl::StrCat("output_dtype: unsupported activation dtype ",
                     static_cast<int>(output)));
  }
  ComputeTask task;
  task.layer = request.layer();
  MOE_RETURN_IF_ERROR(
      DecodeTensor(request.rows(), "rows", config.hidden_size, &task.rows));
  task.n = request.rows().rows();
  if (request.assignments_per_row_size() != task.n) {
    return absl::InvalidArgumentError(absl::StrCat(
        "assignments_per_row: ", request.assignments_per_row_size(),
        " entries for ", task.n, " rows"));
  }
  if (request.expert_weights_size() != request.expert_ids_size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expert_weights: ", request.expert_weights_size(), " entries for ",
        request.expert_ids_size(), " expert_ids"));
  }
  int next = 0;
  for (int32_t row = 0; row < task.n; ++row) {
    const int count = request.assignments_per_row(row);
    if (count < 0 || count > config.top_k ||
        next + count > request.expert_ids_size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("assignments_per_row[", row, "]: ", count,
                       " is negative, above top-k ", config.top_k,
                       ", or past the end of expert_ids"));
    }
    for (int i = 0; i < count; ++i, ++next) {
      const int32_t expert = request.expert_ids(next);
      if (expert < 0 || expert >= config.num_experts) {
        return absl::InvalidArgumentError(
            absl::StrCat("expert_ids[", next, "]: ", expert, " is outside [0, ",
                         config.num_experts, ")"));
      }
      task.assignments.push_back({row, expert, request.expert_weights(next)});
    }
  }
  if (next != request.expert_ids_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("assignments_per_row: sums to ", next, ", expert_ids has ",
                     request.expert_ids_size(), " entries"));
  }
  return task;
}

grpc::ServerUnaryReactor* ExpertWorkerService::Compute(
    grpc::CallbackServerContext* context, const v1::ComputeRequest* request,
    v1::ComputeResponse* reply) {
  absl::StatusOr<ComputeTask> task = MakeTask(*request);
  if (!task.ok()) return FinishNow(context, task.status());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const v1::ActivationDType dtype =
      request->output_dtype() == v1::ACTIVATION_DTYPE_UNSPECIFIED
          ? request->rows().dtype()
          : request->output_dtype();
  const int64_t hidden = store_.config().hidden_size;
  task->abandoned = [context] {
    return context->IsCancelled() ||
           context->deadline() < std::chrono::system_clock::now();
  };
  const int64_t n = task->n;
  task->done = [reactor, reply, dtype, hidden, n](absl::Status status,
                                                  std::vector<float> out,
                                                  ComputeStats stats) {
    if (status.ok()) {
      EncodeTensor(out.data(), n, hidden, dtype, reply->mutable_output());
      reply->set_queue_wait_us(stats.queue_wait_us);
      reply->set_compute_us(stats.compute_us);
      reply->set_batched_calls(stats.batched_calls);
    }
    reactor->Finish(ToGrpcStatus(status));
  };
  if (absl::Status queued = queue_.Submit(std::move(*task)); !queued.ok()) {
    reactor->Finish(ToGrpcStatus(queued));
  }
  return reactor;
}

}  // namespace moe

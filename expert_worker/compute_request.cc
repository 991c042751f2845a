#include "expert_worker/compute_request.h"

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"
#include "rpc/tensor_codec.h"

namespace moe {

absl::StatusOr<ComputeTask> MakeComputeTask(const v1::ComputeRequest& request,
                                            const ExpertStore& store,
                                            const std::string& worker_id) {
  const ModelConfig& config = store.config();
  if (request.layer() < 0 || request.layer() >= config.num_layers) {
    return absl::InvalidArgumentError(absl::StrCat("layer: ", request.layer(),
                                                   " is outside [0, ",
                                                   config.num_layers, ")"));
  }
  const int loaded_version = store.placement_version();
  if (request.placement_version() > loaded_version) {
    return absl::FailedPreconditionError(
        absl::StrCat("placement_version: the router uses plan version ",
                     request.placement_version(), ", worker ", worker_id,
                     " has loaded version ", loaded_version));
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

void FillComputeResponse(const v1::ComputeRequest& request,
                         const std::vector<float>& output, int64_t hidden,
                         const ComputeStats& stats,
                         v1::ComputeResponse* response) {
  const v1::ActivationDType dtype =
      request.output_dtype() == v1::ACTIVATION_DTYPE_UNSPECIFIED
          ? request.rows().dtype()
          : request.output_dtype();
  EncodeTensor(output.data(), request.rows().rows(), hidden, dtype,
               response->mutable_output());
  response->set_queue_wait_us(stats.queue_wait_us);
  response->set_compute_us(stats.compute_us);
  response->set_batched_calls(stats.batched_calls);
}

}  // namespace moe

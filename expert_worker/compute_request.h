#ifndef MOE_EXPERT_WORKER_COMPUTE_REQUEST_H_
#define MOE_EXPERT_WORKER_COMPUTE_REQUEST_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/model_config.h"
#include "expert_worker/compute_queue.h"
#include "moe/v1/expert.pb.h"

namespace moe {

// The identity a worker reports, from its plan.
struct WorkerIdentity {
  std::string id;
  std::string device = "cpu";
  int64_t memory_budget_bytes = 0;
  int placement_version = 0;
  std::string model;
};

// A ComputeRequest as a task for the compute queue (its `abandoned` and
// `done` left to the caller), or INVALID_ARGUMENT / FAILED_PRECONDITION
// naming the field. The Compute RPC and the activation links share it.
absl::StatusOr<ComputeTask> MakeComputeTask(const v1::ComputeRequest& request,
                                            const ModelConfig& config,
                                            const WorkerIdentity& identity);

// The reply to `request` from its task's output [n, hidden], in the dtype
// the request asked for.
void FillComputeResponse(const v1::ComputeRequest& request,
                         const std::vector<float>& output, int64_t hidden,
                         const ComputeStats& stats,
                         v1::ComputeResponse* response);

}  // namespace moe

#endif  // MOE_EXPERT_WORKER_COMPUTE_REQUEST_H_

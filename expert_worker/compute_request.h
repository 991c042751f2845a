#ifndef MOE_EXPERT_WORKER_COMPUTE_REQUEST_H_
#define MOE_EXPERT_WORKER_COMPUTE_REQUEST_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/model_config.h"
#include "expert_worker/compute_queue.h"
#include "expert_worker/expert_store.h"
#include "moe/v1/expert.pb.h"

namespace moe {

// The identity a worker reports. The plan version is the store's: it
// changes as plans are applied.
struct WorkerIdentity {
  std::string id;
  std::string device = "cpu";
  int64_t memory_budget_bytes = 0;
  std::string model;
};

// A ComputeRequest as a task for the compute queue (its `abandoned` and
// `done` left to the caller), or INVALID_ARGUMENT / FAILED_PRECONDITION
// naming the field. The Compute RPC and the activation links share it.
// A request for a plan version the worker has not loaded yet is refused;
// one for an older version is served (the router finishes its steps on the
// old plan after the workers loaded the new one), the experts each row
// names being checked either way.
absl::StatusOr<ComputeTask> MakeComputeTask(const v1::ComputeRequest& request,
                                            const ExpertStore& store,
                                            const std::string& worker_id);

// The reply to `request` from its task's output [n, hidden], in the dtype
// the request asked for.
void FillComputeResponse(const v1::ComputeRequest& request,
                         const std::vector<float>& output, int64_t hidden,
                         const ComputeStats& stats,
                         v1::ComputeResponse* response);

}  // namespace moe

#endif  // MOE_EXPERT_WORKER_COMPUTE_REQUEST_H_

#ifndef MOE_EXPERT_WORKER_WORKER_SERVICE_H_
#define MOE_EXPERT_WORKER_WORKER_SERVICE_H_

#include <atomic>
#include <string>

#include "core/placement/placement_plan.h"
#include "expert_worker/compute_queue.h"
#include "expert_worker/compute_request.h"
#include "expert_worker/expert_store.h"
#include "moe/v1/expert.grpc.pb.h"
#include "rpc/admin_access.h"

namespace moe {

// moe.v1.ExpertWorker: validates each call against the model and the experts
// held, then hands it to the compute queue; the reply is sent when the
// batched compute it joined is done, without holding a thread meanwhile.
class ExpertWorkerService final : public v1::ExpertWorker::CallbackService {
 public:
  // `admin` says who may load and unload experts.
  ExpertWorkerService(WorkerIdentity identity, ExpertStore& store,
                      ComputeQueue& queue, const AdminAccess& admin)
      : identity_(std::move(identity)),
        store_(store),
        queue_(queue),
        admin_(admin) {}

  grpc::ServerUnaryReactor* Describe(grpc::CallbackServerContext* context,
                                     const v1::DescribeRequest* request,
                                     v1::WorkerDescription* reply) override;
  grpc::ServerUnaryReactor* LoadExperts(grpc::CallbackServerContext* context,
                                        const v1::ExpertSet* request,
                                        v1::WorkerDescription* reply) override;
  grpc::ServerUnaryReactor* UnloadExperts(
      grpc::CallbackServerContext* context, const v1::ExpertSet* request,
      v1::WorkerDescription* reply) override;
  grpc::ServerUnaryReactor* Compute(grpc::CallbackServerContext* context,
                                    const v1::ComputeRequest* request,
                                    v1::ComputeResponse* reply) override;

  // While a LoadExperts call runs (the worker reports NOT_SERVING).
  bool loading() const { return loading_.load() > 0; }

 private:
  void FillDescription(v1::WorkerDescription* reply) const;

  const WorkerIdentity identity_;
  ExpertStore& store_;
  ComputeQueue& queue_;
  const AdminAccess& admin_;
  std::atomic<int> loading_{0};
};

}  // namespace moe

#endif  // MOE_EXPERT_WORKER_WORKER_SERVICE_H_

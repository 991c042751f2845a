#ifndef MOE_ROUTER_SERVICE_ADMIN_RPC_SERVICE_H_
#define MOE_ROUTER_SERVICE_ADMIN_RPC_SERVICE_H_

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "moe/v1/router_admin.grpc.pb.h"
#include "router_service/load_window.h"
#include "router_service/placement_change.h"
#include "rpc/admin_access.h"

namespace moe {

// moe.v1.RouterAdmin over a PlacementChange. A change takes seconds (workers
// read experts), so each call runs on a thread of its own and answers from
// there (joined when the next call comes, or when the service goes away).
class RouterAdminService final : public v1::RouterAdmin::CallbackService {
 public:
  // `load` is the router's load window, which Rebalance and DrainWorker
  // plan from.
  // `admin` says who may call it.
  RouterAdminService(PlacementChange& change, const LoadWindow& load,
                     const AdminAccess& admin)
      : change_(change), load_(load), admin_(admin) {}
  ~RouterAdminService() override;

  grpc::ServerUnaryReactor* ApplyPlan(grpc::CallbackServerContext* context,
                                      const v1::ApplyPlanRequest* request,
                                      v1::PlanChange* reply) override;
  grpc::ServerUnaryReactor* Rebalance(grpc::CallbackServerContext* context,
                                      const v1::RebalanceRequest* request,
                                      v1::PlanChange* reply) override;
  grpc::ServerUnaryReactor* AddWorker(grpc::CallbackServerContext* context,
                                      const v1::AddWorkerRequest* request,
                                      v1::WorkerDescription* reply) override;
  grpc::ServerUnaryReactor* DrainWorker(grpc::CallbackServerContext* context,
                                        const v1::DrainWorkerRequest* request,
                                        v1::PlanChange* reply) override;

 private:
  // Runs `work` on a thread of its own and finishes the call with its status.
  grpc::ServerUnaryReactor* RunAside(grpc::CallbackServerContext* context,
                                     std::function<absl::Status()> work);
  // Routed tokens of the last `window_seconds` (0: 60); empty when none were.
  absl::StatusOr<std::vector<double>> Load(int window_seconds) const;

  PlacementChange& change_;
  const LoadWindow& load_;
  const AdminAccess& admin_;
  struct Aside {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::mutex mutex_;
  std::vector<Aside> asides_;  // guarded by mutex_
};

}  // namespace moe

#endif  // MOE_ROUTER_SERVICE_ADMIN_RPC_SERVICE_H_

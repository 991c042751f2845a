#ifndef MOE_ROUTER_SERVICE_GRPC_EXPERT_DISPATCH_H_
#define MOE_ROUTER_SERVICE_GRPC_EXPERT_DISPATCH_H_

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/placement/placement_plan.h"
#include "engine/expert_dispatch.h"
#include "moe/v1/expert.grpc.pb.h"
#include "router_service/worker_registry.h"

namespace moe {

// Experts on expert workers, placed by a plan. Each layer's rows go out as
// one Compute call per worker that holds any of their experts, all calls in
// flight at once; the partial sums come back and are added up. A row whose
// expert has replicas goes to the live replica with the fewest rows
// outstanding (relative to its speed).
//
// Failover: a worker whose call fails is marked down (WorkerHealth) and
// its rows' assignments go again, within the same step, to other live
// holders of the same experts; only an assignment whose expert has no live
// holder left fails its row, with UNAVAILABLE naming the expert and the
// workers tried. A down worker is probed until it serves the plan again,
// then used again; one that came back holding other experts (restarted
// from an older plan) is given the plan's share first.
//
// The plan changes while serving (PlacementChange drives it): workers join,
// a next plan is staged, and SwitchToStaged makes it the plan of the calls
// that start after it; a layer in flight keeps the plan it started with,
// retries included. Workers that loaded the next plan serve the one in use
// too (a worker serves its version and older ones).
class GrpcExpertDispatch : public ExpertDispatch {
 public:
  using Options = ExpertTierOptions;

  // Every worker of the plan needs an endpoint, and every endpoint a worker.
  static absl::StatusOr<std::unique_ptr<GrpcExpertDispatch>> Connect(
      const PlacementPlan& plan, int hidden_size,
      const std::vector<WorkerEndpoint>& endpoints, const Options& options);

  // Waits (up to `timeout`) until every worker answers, and checks that it
  // serves this plan: same version and row width, and every expert the plan
  // gives it loaded.
  absl::Status AwaitWorkers(absl::Duration timeout);

  // Sends every worker's call of the layer at once and returns; the
  // pending computation adds up the partial sums when waited for.
  std::unique_ptr<PendingExperts> Start(const ExpertBatch& batch,
                                        float* out) override;

  int placement_version() const { return plan()->version; }
  // The plan in use.
  std::shared_ptr<const PlacementPlan> plan() const;
  // Whether every expert of the plan in use has a holder that is up.
  bool EveryExpertHeld() const;
  // The known workers (joined order), each with its counters and health.
  std::vector<WorkerCallStats> Stats() const;

  // Changes of the expert tier; one at a time (the caller holds the lock
  // from LockChanges throughout).
  std::unique_lock<std::mutex> LockChanges() {
    return std::unique_lock<std::mutex>(change_mutex_);
  }
  WorkerRegistry& workers() { return *registry_; }
  // OK when the worker is who it says, takes the router's rows, and (when
  // the plan in use names it) serves that plan: its version or a later
  // one, and every expert the plan gives it.
  absl::Status CheckWorker(const RemoteWorker& worker,
                           const v1::WorkerDescription& description) const;
  // OK when `next` can follow the plan in use: not an older version, valid,
  // the same model shape, and every worker known; else INVALID_ARGUMENT or
  // FAILED_PRECONDITION saying what is wrong.
  absl::Status CheckPlan(const PlacementPlan& next) const;
  // CheckPlan, then stages `next` for SwitchToStaged.
  absl::Status StageNext(const PlacementPlan& next);
  // OK when every expert of the staged plan has a holder that is up; else
  // UNAVAILABLE naming one that has none, and its holders.
  absl::Status StagedPlanHeld() const;
  // The staged plan becomes the one calls start with; the caller runs it
  // between engine steps, so no step mixes the two.
  void SwitchToStaged();
  // Forgets the staged plan (after a switch, or when the change failed).
  void DropStaged();

 private:
  // A plan with its workers (in plan order).
  struct Placement {
    PlacementPlan plan;
    std::vector<std::shared_ptr<RemoteWorker>> workers;
  };
  // One (row, expert) assignment on its way, with the workers that failed
  // it in this step and the last failure.
  struct Routed {
    int32_t row;
    int32_t expert;
    float weight;
    std::vector<int> tried;
    absl::Status last_failure;
  };
  // What a layer's calls (and their retries) read: the step's rows, and the
  // placement the layer started with.
  struct Rows {
    int layer;
    const float* x;
    int64_t n;
    std::vector<absl::Time> deadlines;  // per row; empty: none
    std::shared_ptr<const Placement> placement;
  };
  struct Call;
  class Pending;

  GrpcExpertDispatch(int hidden_size, Options options)
      : hidden_size_(hidden_size), options_(options) {}

  // The plan's workers from the registry; INVALID_ARGUMENT naming one it
  // does not know.
  absl::StatusOr<std::shared_ptr<const Placement>> Place(
      const PlacementPlan& plan) const;
  std::shared_ptr<const Placement> current() const;
  // OK when the worker has loaded `plan`'s version (or a later one) and
  // holds every expert the plan gives it.
  absl::Status CheckShare(const RemoteWorker& worker,
                          const v1::WorkerDescription& description,
                          const PlacementPlan& plan) const;
  // Describe, then CheckWorker. A worker that answers with an older
  // version or without its share (one restarted from an older plan) is
  // given its share first, unless a plan change is running.
  absl::Status Probe(RemoteWorker& worker);
  // Loads the worker's share of `plan` and unloads the rest.
  absl::Status GiveShare(const RemoteWorker& worker,
                         const v1::WorkerDescription& description,
                         const PlacementPlan& plan);
  // The holder of (layer, expert), not among `tried`, that should take one
  // more row: a live one if any (the least loaded), else one that is down
  // (it may be back before a probe has seen it); -1 when all were tried.
  int PickHolder(const Placement& placement, int layer, int expert,
                 const std::vector<int>& tried,
                 const std::vector<int64_t>& rows_this_call) const;
  // Why `routed` cannot be sent anywhere.
  absl::Status NoHolderError(const Placement& placement, int layer,
                             const Routed& routed) const;
  // Sends each assignment to a live holder, grouped into one call per
  // worker, and returns the calls in flight; `out` gets their sums when
  // waited for. Assignments with no live holder fail their rows there.
  std::unique_ptr<Pending> Send(std::shared_ptr<const Rows> rows,
                                std::vector<Routed> routed, float* out);
  absl::Status CallError(const RemoteWorker& worker, int layer,
                         const grpc::Status& status,
                         absl::Duration waited) const;
  // One finished call: its partial sums added into `out`; or, when it
  // failed, its assignments listed in `retry` (the worker marked down), or
  // its rows in `failures` when another worker cannot help; counted in the
  // worker's stats.
  void Collect(Call& call, const Rows& rows, float* out,
               std::vector<RowFailure>& failures, std::vector<Routed>& retry);

  const int hidden_size_;
  const Options options_;
  std::mutex change_mutex_;
  mutable std::mutex placement_mutex_;
  std::shared_ptr<const Placement> placement_;  // guarded by placement_mutex_
  std::shared_ptr<const Placement> staged_;     // guarded by placement_mutex_
  // Last: its health prober calls Probe, which reads the members above.
  std::unique_ptr<WorkerRegistry> registry_;
};

}  // namespace moe

#endif  // MOE_ROUTER_SERVICE_GRPC_EXPERT_DISPATCH_H_

#ifndef MOE_ROUTER_SERVICE_PLACEMENT_CHANGE_H_
#define MOE_ROUTER_SERVICE_PLACEMENT_CHANGE_H_

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/placement/placement_plan.h"
#include "moe/v1/router_admin.pb.h"
#include "router_service/grpc_expert_dispatch.h"

namespace moe {

// Changes the expert tier of a serving router: applies a plan, adds a
// worker, drains one, or rebalances from the measured load. One change at a
// time. A plan is applied in phases, each a switch made between two engine
// steps, so no request fails or waits longer than a step:
//   1. every worker of the new plan loads what it gains, told the new
//      version;
//   2. once every expert of the new plan has a live holder, the router
//      switches to it between two steps;
//   3. the workers unload what they lost.
// When a worker's memory cannot take what it gains beside what it holds,
// the plan is reached in waves, each such a phase towards it: the gains
// that fit are loaded, and the copies the new plan drops go once another
// holder of the new plan has the expert, which makes room for the next.
// Meanwhile an expert may have fewer copies than either plan gives it.
class PlacementChange {
 public:
  // between_steps(task): runs `task` between two engine steps and returns
  // once it ran (BatchEngine::RunBetweenSteps).
  using BetweenSteps = std::function<absl::Status(std::function<void()>)>;

  PlacementChange(GrpcExpertDispatch& dispatch, BetweenSteps between_steps)
      : dispatch_(dispatch), between_steps_(std::move(between_steps)) {}

  absl::StatusOr<v1::PlanChange> Apply(const PlacementPlan& plan);
  // A plan from `load` (routed tokens per (layer, expert), [layers x
  // experts]; empty: uniform) with every known worker, applied.
  absl::StatusOr<v1::PlanChange> Rebalance(const std::vector<double>& load);
  // The same without the worker; then the router forgets it.
  absl::StatusOr<v1::PlanChange> Drain(const std::string& worker_id,
                                       const std::vector<double>& load);
  absl::StatusOr<v1::WorkerDescription> AddWorker(
      const WorkerEndpoint& endpoint);
  // A change running or to come stops at its next phase with CANCELLED
  // (the router is shutting down).
  void Stop() { stopping_.store(true); }

 private:
  absl::StatusOr<v1::PlanChange> ApplyLocked(const PlacementPlan& plan);
  // Stages `plan`, has its workers load what they gain, switches between
  // steps, then unloads what they lost; adds to `report`.
  absl::Status RunPhase(const PlacementPlan& plan, v1::PlanChange& report);
  // The waves that lead from the plan in use to `target` (none when it
  // fits at once), from what its workers hold and may hold;
  // RESOURCE_EXHAUSTED naming a worker when no wave makes room,
  // INVALID_ARGUMENT for a worker the router does not know.
  absl::StatusOr<std::vector<PlacementPlan>> PlanWaves(
      const PlacementPlan& target);
  // A plan (the next version) from `load` on every known worker but
  // `excluded`, with the copies and replicas of the plan in use, keeping
  // experts where they are as far as the balance allows.
  absl::StatusOr<PlacementPlan> PlanFromLoad(const std::vector<double>& load,
                                             const std::string& excluded);

  GrpcExpertDispatch& dispatch_;
  const BetweenSteps between_steps_;
  std::atomic<bool> stopping_{false};
  // The last plan applied in full (none yet: the one the router started
  // with); guarded by the dispatch's change lock.
  std::optional<PlacementPlan> last_applied_;
};

}  // namespace moe

#endif  // MOE_ROUTER_SERVICE_PLACEMENT_CHANGE_H_

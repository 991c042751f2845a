#ifndef MOE_CORE_PLACEMENT_PLACEMENT_PLANNER_H_
#define MOE_CORE_PLACEMENT_PLACEMENT_PLANNER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/placement/placement_plan.h"

namespace moe {

// What the planner places, and where.
struct PlannerInput {
  std::string model;
  int version = 1;
  int num_layers = 0;
  int num_experts = 0;
  int64_t expert_bytes = 0;
  std::vector<WorkerSpec> workers;
  // Routed tokens per (layer, expert), [layers x experts] row-major; empty
  // means uniform.
  std::vector<double> load;
  // Copies of every expert, each on a distinct worker, so that any
  // copies - 1 workers can fail with every expert still held.
  int copies = 1;
  // Extra expert copies beyond `copies` per expert, placed on the hottest
  // experts where memory allows.
  int replica_budget = 0;
  // The workers (indices into `workers`) holding each (layer, expert) now,
  // [layers x experts]; empty: a plan from scratch. Each layer then keeps
  // its experts where they are as far as its slowest worker's time stays
  // within kKeepSlack of the plan from scratch, so a new plan moves few
  // experts.
  std::vector<std::vector<int>> current_holders;
};

// How much slower than a plan from scratch a layer's slowest worker may be
// to keep experts where they are.
inline constexpr double kKeepSlack = 0.05;

// Places `copies` of every expert on distinct workers within every worker's
// memory, minimizing layer by layer the most loaded worker's predicted time
// (load share / speed), keeping experts where they are when that costs
// little (`current_holders`). Fails with RESOURCE_EXHAUSTED saying how many
// bytes are missing when the copies do not fit, and naming a worker whose
// budget is below one expert.
absl::StatusOr<PlacementPlan> PlanPlacement(const PlannerInput& input);

// `plan`'s holders as indices into `workers`, matched by id (a worker not
// in `workers` is left out): PlannerInput::current_holders for a new plan
// that starts from `plan`.
std::vector<std::vector<int>> CurrentHolders(
    const PlacementPlan& plan, const std::vector<WorkerSpec>& workers);

// How many (layer, expert, worker) copies `to` has that `from` has not (by
// worker id): the experts workers load to go from one plan to the other.
int64_t CopiesToLoad(const PlacementPlan& from, const PlacementPlan& to);

// Predicted time of each worker in one layer (sum over its experts of the
// expert's load divided by its replica count, divided by the worker's speed).
std::vector<double> PredictedLayerTimes(const PlacementPlan& plan,
                                        const std::vector<double>& load,
                                        int layer);

}  // namespace moe

#endif  // MOE_CORE_PLACEMENT_PLACEMENT_PLANNER_H_

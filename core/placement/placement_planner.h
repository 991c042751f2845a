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
};

// Places `copies` of every expert on distinct workers within every worker's
// memory, minimizing layer by layer the most loaded worker's predicted time
// (load share / speed). Fails with RESOURCE_EXHAUSTED saying how many bytes
// are missing when the copies do not fit, and naming a worker whose budget
// is below one expert.
absl::StatusOr<PlacementPlan> PlanPlacement(const PlannerInput& input);

// Predicted time of each worker in one layer (sum over its experts of the
// expert's load divided by its replica count, divided by the worker's speed).
std::vector<double> PredictedLayerTimes(const PlacementPlan& plan,
                                        const std::vector<double>& load,
                                        int layer);

}  // namespace moe

#endif  // MOE_CORE_PLACEMENT_PLACEMENT_PLANNER_H_

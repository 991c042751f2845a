#ifndef MOE_CORE_PLACEMENT_PLACEMENT_PLAN_H_
#define MOE_CORE_PLACEMENT_PLACEMENT_PLAN_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace moe {

// One expert worker as the planner sees it.
struct WorkerSpec {
  std::string id;            // unique, e.g. "w0"
  int64_t memory_bytes = 0;  // budget for expert weights on this worker
  double speed = 1.0;        // relative throughput (rows per second, scaled)
};

// A placement plan: which workers hold each (layer, expert). Every expert has
// at least one holder; hot experts may have several (replicas), over which
// the router spreads rows.
struct PlacementPlan {
  int version = 1;
  std::string model;  // the model the plan is for (its directory's name)
  int num_layers = 0;
  int num_experts = 0;
  int64_t expert_bytes = 0;  // bytes of one expert's weights
  std::vector<WorkerSpec> workers;
  // holders[layer * num_experts + expert]: indices into `workers`.
  std::vector<std::vector<int>> holders;

  const std::vector<int>& Holders(int layer, int expert) const {
    return holders[static_cast<size_t>(layer) * num_experts + expert];
  }
  // Index of the worker with this id, or -1.
  int WorkerIndex(const std::string& id) const;
  // Number of (layer, expert) copies the worker holds.
  int64_t ExpertCount(int worker) const;
  // The (layer, expert) pairs the worker holds, in (layer, expert) order;
  // none for -1 (WorkerIndex of a worker the plan does not name).
  std::vector<std::pair<int, int>> ExpertsOf(int worker) const;
};

// How errors name an expert: "layer L expert E".
std::string ExpertName(int layer, int expert);

// Checks a worker list: at least one worker, ids non-empty and unique,
// memory non-negative, speed a positive number; errors name the worker.
absl::Status ValidateWorkers(const std::vector<WorkerSpec>& workers);

// INVALID_ARGUMENT when the plan is for another number of layers or experts.
absl::Status CheckPlanMatchesModel(const PlacementPlan& plan, int num_layers,
                                   int num_experts);

// Checks the plan's internal consistency (sizes, holder indices, unique
// worker ids, every expert held at least once, no worker listed twice for
// one expert); errors name the offending layer/expert or worker.
absl::Status ValidatePlan(const PlacementPlan& plan);

nlohmann::json PlanToJson(const PlacementPlan& plan);
// `source` names the file in error messages.
absl::StatusOr<PlacementPlan> PlanFromJson(const nlohmann::json& json,
                                           const std::string& source);
absl::StatusOr<PlacementPlan> ReadPlan(const std::string& path);
absl::Status WritePlan(const PlacementPlan& plan, const std::string& path);

}  // namespace moe

#endif  // MOE_CORE_PLACEMENT_PLACEMENT_PLAN_H_

#include "router_service/placement_change.h"

#include <algorithm>
#include <iostream>
#include <iterator>
#include <limits>
#include <map>
#include <optional>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/placement/placement_planner.h"
#include "core/util/status_macros.h"

namespace moe {
namespace {

using ExpertList = std::vector<std::pair<int, int>>;

constexpr absl::Duration kDescribeTimeout = absl::Seconds(5);
// How long a new plan's experts may lack a live holder after loading.
constexpr absl::Duration kHolderTimeout = absl::Seconds(10);

ExpertList ShareOf(const PlacementPlan& plan, const std::string& id) {
  return plan.ExpertsOf(plan.WorkerIndex(id));
}

ExpertList Minus(const ExpertList& a, const ExpertList& b) {
  ExpertList out;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(),
                      std::back_inserter(out));
  return out;
}

ExpertList Union(const ExpertList& a, const ExpertList& b) {
  ExpertList out;
  std::set_union(a.begin(), a.end(), b.begin(), b.end(),
                 std::back_inserter(out));
  return out;
}

// What a worker holds and the bytes it may hold (0: no bound).
struct WorkerRoom {
  ExpertList held;
  int64_t budget_bytes = 0;
};

// When some worker of `target` cannot hold what it gains beside what it
// holds: a step from `from` towards `target` (the gains that fit added as
// holders and, for every expert that then has a holder of the target, the
// holders the target drops removed; what a worker holds beyond its share
// goes too); nullopt when the target fits at once; RESOURCE_EXHAUSTED
// naming a worker when no step makes room.
absl::StatusOr<std::optional<PlacementPlan>> NextWave(
    const PlacementPlan& from, const PlacementPlan& target,
    const std::map<std::string, WorkerRoom>& rooms) {
  PlacementPlan wave = from;
  for (const WorkerSpec& spec : target.workers) {
    if (wave.WorkerIndex(spec.id) < 0) wave.workers.push_back(spec);
  }
  bool fits_at_once = true;
  bool holds_extras = false;
  std::string short_of_room;
  for (const WorkerSpec& spec : target.workers) {
    const WorkerRoom& room = rooms.at(spec.id);
    const ExpertList share = target.ExpertsOf(target.WorkerIndex(spec.id));
    // Experts it has room for; no bound without a budget.
    const int64_t slots = room.budget_bytes > 0
                              ? room.budget_bytes / target.expert_bytes
                              : std::numeric_limits<int64_t>::max();
    if (static_cast<int64_t>(share.size()) > slots) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "plan version ", target.version, " gives worker ", spec.id, " ",
          share.size(), " experts (", share.size() * target.expert_bytes,
          " bytes), over its budget of ", room.budget_bytes, " bytes"));
    }
    const int64_t peak = static_cast<int64_t>(Union(room.held, share).size());
    if (peak > slots && short_of_room.empty()) {
      short_of_room = absl::StrCat("worker ", spec.id, " would hold ", peak,
                                   " experts (", peak * target.expert_bytes,
                                   " bytes) while the plan changes, over "
                                   "its budget of ",
                                   room.budget_bytes, " bytes");
    }
    fits_at_once &= peak <= slots;
    holds_extras |= !Minus(room.held, ShareOf(from, spec.id)).empty();
    // As many of its gains as fit beside what it holds join the wave.
    int64_t free = slots - static_cast<int64_t>(room.held.size());
    const int index = wave.WorkerIndex(spec.id);
    for (const auto& [layer, expert] : Minus(share, room.held)) {
      if (free-- <= 0) break;
      std::vector<int>& holders =
          wave.holders[static_cast<size_t>(layer) * wave.num_experts + expert];
      // The plan in use may name it already (a worker that lost its copy).
      if (std::find(holders.begin(), holders.end(), index) == holders.end()) {
        holders.push_back(index);
      }
    }
  }
  if (fits_at_once) return std::nullopt;
  for (int layer = 0; layer < wave.num_layers; ++layer) {
    for (int expert = 0; expert < wave.num_experts; ++expert) {
      std::vector<int>& holders =
          wave.holders[static_cast<size_t>(layer) * wave.num_experts + expert];
      const std::vector<int>& kept = target.Holders(layer, expert);
      auto in_target = [&](int holder) {
        const int t = target.WorkerIndex(wave.workers[holder].id);
        return std::find(kept.begin(), kept.end(), t) != kept.end();
      };
      if (std::any_of(holders.begin(), holders.end(), in_target)) {
        std::erase_if(holders, [&](int h) { return !in_target(h); });
      }
    }
  }
  if (wave.holders == from.holders && !holds_extras) {
    return absl::ResourceExhaustedError(
        absl::StrCat(short_of_room,
                     ", and no expert can move first to make room; apply "
                     "a plan that moves fewer experts at once"));
  }
  return wave;
}

// The report's entry for a worker, made on first use.
v1::WorkerChange& EntryFor(v1::PlanChange& report, const std::string& id) {
  for (v1::WorkerChange& entry : *report.mutable_workers()) {
    if (entry.worker_id() == id) return entry;
  }
  v1::WorkerChange* entry = report.add_workers();
  entry->set_worker_id(id);
  return *entry;
}

// Runs fn(i) for i in [0, n) on threads of their own; the first error.
absl::Status ForEachInParallel(size_t n,
                               const std::function<absl::Status(size_t)>& fn) {
  std::vector<absl::Status> results(n);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < n; ++i) {
    threads.emplace_back([&, i] { results[i] = fn(i); });
  }
  for (std::thread& thread : threads) thread.join();
  for (const absl::Status& result : results) MOE_RETURN_IF_ERROR(result);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::PlanChange> PlacementChange::Apply(
    const PlacementPlan& plan) {
  std::unique_lock<std::mutex> lock = dispatch_.LockChanges();
  return ApplyLocked(plan);
}

absl::StatusOr<v1::PlanChange> PlacementChange::Rebalance(
    const std::vector<double>& load) {
  std::unique_lock<std::mutex> lock = dispatch_.LockChanges();
  MOE_ASSIGN_OR_RETURN(const PlacementPlan plan, PlanFromLoad(load, ""));
  return ApplyLocked(plan);
}

absl::StatusOr<v1::PlanChange> PlacementChange::Drain(
    const std::string& worker_id, const std::vector<double>& load) {
  std::unique_lock<std::mutex> lock = dispatch_.LockChanges();
  if (dispatch_.workers().Find(worker_id) == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        "worker_id: the router has no worker \"", worker_id, "\""));
  }
  v1::PlanChange report;
  if (dispatch_.plan()->WorkerIndex(worker_id) >= 0) {
    MOE_ASSIGN_OR_RETURN(const PlacementPlan plan,
                         PlanFromLoad(load, worker_id));
    MOE_ASSIGN_OR_RETURN(report, ApplyLocked(plan));
  } else {
    report.set_from_version(dispatch_.placement_version());
    report.set_to_version(dispatch_.placement_version());
    report.set_plan_json(PlanToJson(*dispatch_.plan()).dump());
  }
  dispatch_.workers().Remove(worker_id);
  std::cerr << "moe-router: expert worker " << worker_id
            << " drained and forgotten" << std::endl;
  return report;
}

absl::StatusOr<v1::WorkerDescription> PlacementChange::AddWorker(
    const WorkerEndpoint& endpoint) {
  std::unique_lock<std::mutex> lock = dispatch_.LockChanges();
  if (endpoint.id.empty() || endpoint.address.find(':') == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("worker_id and address (host:port) are needed, got \"",
                     endpoint.id, "\" at \"", endpoint.address, "\""));
  }
  MOE_ASSIGN_OR_RETURN(std::shared_ptr<RemoteWorker> worker,
                       dispatch_.workers().Add(endpoint));
  absl::StatusOr<v1::WorkerDescription> description =
      dispatch_.workers().Describe(*worker, kDescribeTimeout,
                                   /*wait_for_ready=*/true);
  const absl::Status joined = description.ok()
                                  ? dispatch_.CheckWorker(*worker, *description)
                                  : description.status();
  if (!joined.ok()) {
    dispatch_.workers().Remove(endpoint.id);
    return joined;
  }
  std::cerr << "moe-router: " << worker->name << " joined ("
            << description->device() << ", "
            << description->memory_budget_bytes() << " bytes for experts)"
            << std::endl;
  return description;
}

absl::StatusOr<v1::PlanChange> PlacementChange::ApplyLocked(
    const PlacementPlan& plan) {
  const absl::Time start = absl::Now();
  const int from = dispatch_.placement_version();
  if (plan.version <= from) {
    return absl::FailedPreconditionError(
        absl::StrCat("plan version ", plan.version,
                     " is not newer than the router's ", from));
  }
  MOE_RETURN_IF_ERROR(dispatch_.CheckPlan(plan));
  v1::PlanChange report;
  report.set_from_version(from);
  report.set_to_version(plan.version);
  // Planned before anything moves, so a plan that cannot be reached
  // changes nothing.
  MOE_ASSIGN_OR_RETURN(std::vector<PlacementPlan> phases, PlanWaves(plan));
  phases.push_back(plan);
  for (const PlacementPlan& phase : phases) {
    const absl::Status done = RunPhase(phase, report);
    if (done.ok()) continue;
    if (report.switches() == 0) return done;
    // Some waves were applied: every expert is held, by an intermediate
    // placement that keeps the version of the plan in use.
    return absl::Status(
        done.code(),
        absl::StrCat(done.message(), " (after ", report.switches(), " of ",
                     phases.size(),
                     " switches: the router serves an intermediate placement "
                     "with version ",
                     dispatch_.placement_version(), "; apply the plan again)"));
  }
  last_applied_ = plan;
  for (const WorkerSpec& spec : plan.workers) {
    EntryFor(report, spec.id)
        .set_experts_held(
            static_cast<int32_t>(plan.ExpertCount(plan.WorkerIndex(spec.id))));
  }
  report.set_total_seconds(absl::ToDoubleSeconds(absl::Now() - start));
  report.set_plan_json(PlanToJson(plan).dump());
  std::cerr << "moe-router: plan version " << plan.version << " applied in "
            << report.total_seconds() << " s (" << report.switches()
            << " switches)" << std::endl;
  return report;
}

absl::Status PlacementChange::RunPhase(const PlacementPlan& plan,
                                       v1::PlanChange& report) {
  WorkerRegistry& registry = dispatch_.workers();
  const absl::Status shutting_down =
      absl::CancelledError("the router is shutting down");
  if (stopping_.load()) return shutting_down;
  MOE_RETURN_IF_ERROR(dispatch_.StageNext(plan));
  absl::Cleanup drop_staged = [this] { dispatch_.DropStaged(); };

  // 1. Every worker of the plan loads what it gains and takes its version.
  absl::Time phase = absl::Now();
  std::vector<std::shared_ptr<RemoteWorker>> workers;
  for (const WorkerSpec& spec : plan.workers) {
    workers.push_back(registry.Find(spec.id));
  }
  std::vector<int> loaded(workers.size(), 0);
  MOE_RETURN_IF_ERROR(ForEachInParallel(workers.size(), [&](size_t w) {
    MOE_ASSIGN_OR_RETURN(const v1::WorkerDescription description,
                         registry.Describe(*workers[w], kDescribeTimeout));
    const ExpertList gained =
        Minus(plan.ExpertsOf(static_cast<int>(w)), ExpertsHeld(description));
    if (gained.empty() && description.placement_version() == plan.version) {
      return absl::OkStatus();
    }
    loaded[w] = static_cast<int>(gained.size());
    return registry
        .ChangeExperts(*workers[w], WorkerRegistry::Change::kLoad, gained,
                       plan.version, kExpertLoadTimeout)
        .status();
  }));
  for (size_t w = 0; w < workers.size(); ++w) {
    v1::WorkerChange& entry = EntryFor(report, plan.workers[w].id);
    entry.set_experts_loaded(entry.experts_loaded() + loaded[w]);
  }
  report.set_load_seconds(report.load_seconds() +
                          absl::ToDoubleSeconds(absl::Now() - phase));

  // 2. Switch between two steps once every expert has a live holder.
  phase = absl::Now();
  for (absl::Status held = dispatch_.StagedPlanHeld(); !held.ok();
       held = dispatch_.StagedPlanHeld()) {
    if (stopping_.load()) return shutting_down;
    if (absl::Now() - phase > kHolderTimeout) {
      return absl::UnavailableError(
          absl::StrCat(held.message(), " ",
                       absl::FormatDuration(kHolderTimeout), " after loading"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  MOE_RETURN_IF_ERROR(between_steps_([this] { dispatch_.SwitchToStaged(); }));
  report.set_switches(report.switches() + 1);
  report.set_switch_seconds(report.switch_seconds() +
                            absl::ToDoubleSeconds(absl::Now() - phase));

  // 3. Every known worker unloads what the plan does not give it. One that
  // cannot keeps them unused (the report says so); the change stands.
  phase = absl::Now();
  const std::vector<std::shared_ptr<RemoteWorker>> known = registry.All();
  std::vector<int> unloaded(known.size(), 0);
  std::vector<absl::Status> unload_status(known.size());
  ForEachInParallel(known.size(), [&](size_t w) {
    absl::StatusOr<v1::WorkerDescription> description =
        registry.Describe(*known[w], kDescribeTimeout);
    if (!description.ok()) return unload_status[w] = description.status();
    const ExpertList lost =
        Minus(ExpertsHeld(*description), ShareOf(plan, known[w]->endpoint.id));
    if (lost.empty()) return absl::OkStatus();
    unload_status[w] =
        registry
            .ChangeExperts(*known[w], WorkerRegistry::Change::kUnload, lost, 0,
                           kExpertLoadTimeout)
            .status();
    if (unload_status[w].ok()) unloaded[w] = static_cast<int>(lost.size());
    return unload_status[w];
  }).IgnoreError();
  for (size_t w = 0; w < known.size(); ++w) {
    if (!unload_status[w].ok()) {
      report.add_unload_errors(std::string(unload_status[w].message()));
    }
    if (unloaded[w] == 0) continue;
    v1::WorkerChange& entry = EntryFor(report, known[w]->endpoint.id);
    entry.set_experts_unloaded(entry.experts_unloaded() + unloaded[w]);
  }
  report.set_unload_seconds(report.unload_seconds() +
                            absl::ToDoubleSeconds(absl::Now() - phase));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<PlacementPlan>> PlacementChange::PlanWaves(
    const PlacementPlan& target) {
  WorkerRegistry& registry = dispatch_.workers();
  std::map<std::string, WorkerRoom> rooms;
  for (const WorkerSpec& spec : target.workers) {
    const std::shared_ptr<RemoteWorker> worker = registry.Find(spec.id);
    if (worker == nullptr) {  // CheckPlan found it; it left since
      return absl::UnavailableError(
          absl::StrCat("worker ", spec.id, " left while the plan was made"));
    }
    MOE_ASSIGN_OR_RETURN(const v1::WorkerDescription description,
                         registry.Describe(*worker, kDescribeTimeout));
    const int64_t budget = description.memory_budget_bytes();
    rooms[spec.id] = {ExpertsHeld(description), budget};
  }
  std::vector<PlacementPlan> waves;
  PlacementPlan from = *dispatch_.plan();
  while (true) {
    MOE_ASSIGN_OR_RETURN(std::optional<PlacementPlan> wave,
                         NextWave(from, target, rooms));
    if (!wave.has_value()) return waves;
    // After it, every worker holds its share of it.
    for (auto& [id, room] : rooms) room.held = ShareOf(*wave, id);
    from = *wave;
    waves.push_back(*std::move(wave));
  }
}

absl::StatusOr<PlacementPlan> PlacementChange::PlanFromLoad(
    const std::vector<double>& load, const std::string& excluded) {
  const std::shared_ptr<const PlacementPlan> in_use = dispatch_.plan();
  PlannerInput input;
  input.model = in_use->model;
  input.version = in_use->version + 1;
  input.num_layers = in_use->num_layers;
  input.num_experts = in_use->num_experts;
  input.expert_bytes = in_use->expert_bytes;
  input.load = load;
  for (const std::shared_ptr<RemoteWorker>& worker :
       dispatch_.workers().All()) {
    if (worker->endpoint.id == excluded) continue;
    WorkerSpec spec;
    spec.id = worker->endpoint.id;
    const int index = in_use->WorkerIndex(spec.id);
    MOE_ASSIGN_OR_RETURN(
        const v1::WorkerDescription description,
        dispatch_.workers().Describe(*worker, kDescribeTimeout));
    spec.memory_bytes =
        description.memory_budget_bytes() > 0
            ? description.memory_budget_bytes()
            : (index < 0 ? 0 : in_use->workers[index].memory_bytes);
    spec.speed = index < 0 ? 1.0 : in_use->workers[index].speed;
    input.workers.push_back(spec);
  }
  // The copies and the replicas of the last plan applied in full stay (the
  // plan in use may be a wave of a change that failed).
  const PlacementPlan& applied =
      last_applied_.has_value() ? *last_applied_ : *in_use;
  size_t copies = applied.holders.empty() ? 1 : applied.holders[0].size();
  int64_t placed = 0;
  for (const std::vector<int>& holders : applied.holders) {
    copies = std::min(copies, holders.size());
    placed += static_cast<int64_t>(holders.size());
  }
  input.copies = static_cast<int>(copies);
  input.replica_budget = static_cast<int>(
      placed - static_cast<int64_t>(copies) * applied.holders.size());
  // Experts stay where they are unless moving them balances the load.
  input.current_holders = CurrentHolders(*in_use, input.workers);
  return PlanPlacement(input);
}

}  // namespace moe

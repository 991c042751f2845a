#include "core/placement/placement_planner.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>
#include <span>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/util/status_macros.h"

namespace moe {
namespace {

double ExpertLoad(const std::vector<double>& load, int num_experts, int layer,
                  int expert) {
  return load.empty() ? 1.0
                      : load[static_cast<size_t>(layer) * num_experts + expert];
}

absl::Status ValidatePlannerInput(const PlannerInput& input) {
  if (input.num_layers < 1 || input.num_experts < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("need at least one layer and one expert, got ",
                     input.num_layers, " x ", input.num_experts));
  }
  const int64_t num_copies = int64_t{input.num_layers} * input.num_experts;
  if (input.expert_bytes < 1 ||
      input.expert_bytes > std::numeric_limits<int64_t>::max() / num_copies) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expert size ", input.expert_bytes, " bytes is out of range for ",
        input.num_layers, " x ", input.num_experts, " experts"));
  }
  MOE_RETURN_IF_ERROR(ValidateWorkers(input.workers));
  if (input.version < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("plan version must be >= 1, got ", input.version));
  }
  if (input.copies < 1 ||
      input.copies > static_cast<int>(input.workers.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat(input.copies,
                     " copies of every expert need as many workers, "
                     "each holding one; there are ",
                     input.workers.size()));
  }
  if (input.replica_budget < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "replica budget must be >= 0, got ", input.replica_budget));
  }
  if (!input.current_holders.empty()) {
    if (static_cast<int64_t>(input.current_holders.size()) != num_copies) {
      return absl::InvalidArgumentError(
          absl::StrCat("current holders: ", input.current_holders.size(),
                       " entries, expected layers x experts = ", num_copies));
    }
    for (const std::vector<int>& holders : input.current_holders) {
      for (int w : holders) {
        if (w < 0 || w >= static_cast<int>(input.workers.size())) {
          return absl::InvalidArgumentError(absl::StrCat(
              "current holders: worker index ", w, " is outside the ",
              input.workers.size(), " workers"));
        }
      }
    }
  }
  if (input.load.empty()) return absl::OkStatus();
  if (static_cast<int64_t>(input.load.size()) != num_copies) {
    return absl::InvalidArgumentError(absl::StrCat(
        "load has ", input.load.size(), " values, expected layers x experts = ",
        input.num_layers, " x ", input.num_experts, " = ", num_copies));
  }
  for (int64_t i = 0; i < num_copies; ++i) {
    if (!std::isfinite(input.load[i]) || input.load[i] < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "load of ", ExpertName(i / input.num_experts, i % input.num_experts),
          " is ", input.load[i], "; it must be a non-negative number"));
    }
  }
  return absl::OkStatus();
}

// How many experts each worker can hold, over all layers. A worker never
// holds one (layer, expert) twice, so more than layers x experts is no use;
// the cap also keeps the sums below from overflowing.
absl::StatusOr<std::vector<int64_t>> WorkerSlots(const PlannerInput& input) {
  const int64_t num_experts = int64_t{input.num_layers} * input.num_experts;
  const int64_t num_copies = num_experts * input.copies;
  std::vector<int64_t> slots;
  for (const WorkerSpec& worker : input.workers) {
    if (worker.memory_bytes < input.expert_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "worker ", worker.id, " has ", worker.memory_bytes,
          " bytes, less than one expert (", input.expert_bytes, " bytes)"));
    }
    slots.push_back(
        std::min(worker.memory_bytes / input.expert_bytes, num_experts));
  }
  const int64_t total = std::accumulate(slots.begin(), slots.end(), int64_t{0});
  if (total < num_copies) {
    const int64_t needed = num_copies * input.expert_bytes;
    const int64_t held = total * input.expert_bytes;
    return absl::ResourceExhaustedError(absl::StrFormat(
        "%s need %d bytes (%d x %d), workers hold %d (room for %d "
        "experts): %d bytes missing (%.2f GiB)",
        input.copies == 1
            ? std::string("experts")
            : absl::StrCat(input.copies, " copies of every expert"),
        needed, num_copies, input.expert_bytes, held, total, needed - held,
        static_cast<double>(needed - held) / (int64_t{1} << 30)));
  }
  return slots;
}

// quota[layer][worker]: how many experts of the layer the worker may hold
// at first. Each worker's slots are split evenly over the layers, so memory
// spreads in proportion (a smaller worker takes fewer experts per layer); the
// remainders go round the layers from where the previous worker's stopped, so
// layer totals differ by at most one and, as they add up to at least layers x
// experts, each reaches num_experts.
std::vector<std::vector<int64_t>> LayerQuotas(const std::vector<int64_t>& slots,
                                              int num_layers) {
  std::vector<std::vector<int64_t>> quota(num_layers,
                                          std::vector<int64_t>(slots.size()));
  int next_layer = 0;
  for (size_t w = 0; w < slots.size(); ++w) {
    for (int layer = 0; layer < num_layers; ++layer) {
      quota[layer][w] = slots[w] / num_layers;
    }
    for (int64_t i = 0; i < slots[w] % num_layers; ++i) {
      ++quota[next_layer][w];
      next_layer = (next_layer + 1) % num_layers;
    }
  }
  return quota;
}

// The holders of one layer's experts, [expert] -> worker indices.
using LayerHolders = std::vector<std::vector<int>>;

// Each worker's predicted time in one layer.
std::vector<double> LayerTimes(std::span<const std::vector<int>> holders,
                               const std::vector<WorkerSpec>& workers,
                               const std::vector<double>& load, int layer) {
  const int num_experts = static_cast<int>(holders.size());
  std::vector<double> times(workers.size(), 0.0);
  for (int expert = 0; expert < num_experts; ++expert) {
    const double share =
        ExpertLoad(load, num_experts, layer, expert) / holders[expert].size();
    for (int w : holders[expert]) times[w] += share;
  }
  for (size_t w = 0; w < times.size(); ++w) times[w] /= workers[w].speed;
  return times;
}

double MaxTime(const PlannerInput& input, int layer,
               const LayerHolders& holders) {
  const std::vector<double> times =
      LayerTimes(holders, input.workers, input.load, layer);
  return *std::max_element(times.begin(), times.end());
}

std::vector<int64_t> Counts(std::span<const std::vector<int>> holders,
                            int num_workers) {
  std::vector<int64_t> counts(num_workers, 0);
  for (const std::vector<int>& h : holders) {
    for (int w : h) ++counts[w];
  }
  return counts;
}

bool Holds(const std::vector<int>& holders, int worker) {
  return std::find(holders.begin(), holders.end(), worker) != holders.end();
}

// Longest processing time first: the layer's expert copies (copies[e] of
// expert e, each carrying an equal part of its load) in descending size, each
// to the worker that would finish it soonest among those with capacity left
// in the layer and without the expert; of equals, the one with the most
// `room` (slots left over all layers), so that equal workers fill up alike.
// Empty if a copy finds no worker.
//
// With `keep_within` (a time), a first pass gives each copy, in the same
// order, to a worker that holds the expert now (current_holders) when its
// time stays within it (the one that would finish soonest); the second pass
// places the rest as above.
std::optional<LayerHolders> AssignLayer(
    const PlannerInput& input, int layer, const std::vector<int>& copies,
    std::vector<int64_t> capacity, std::vector<int64_t> room,
    std::optional<double> keep_within = std::nullopt) {
  struct Copy {
    double load;
    int expert;
  };
  std::vector<Copy> order;
  for (int expert = 0; expert < input.num_experts; ++expert) {
    const double load =
        ExpertLoad(input.load, input.num_experts, layer, expert);
    for (int i = 0; i < copies[expert]; ++i) {
      order.push_back({load / copies[expert], expert});
    }
  }
  std::stable_sort(
      order.begin(), order.end(),
      [](const Copy& a, const Copy& b) { return a.load > b.load; });
  LayerHolders holders(input.num_experts);
  std::vector<double> work(input.workers.size(), 0.0);
  auto give = [&](const Copy& copy, int w) {
    holders[copy.expert].push_back(w);
    work[w] += copy.load;
    --capacity[w];
    --room[w];
  };
  if (keep_within.has_value()) {
    std::vector<Copy> rest;
    for (const Copy& copy : order) {
      int keep = -1;
      double keep_time = 0;
      for (int w :
           input
               .current_holders[static_cast<size_t>(layer) * input.num_experts +
                                copy.expert]) {
        if (capacity[w] == 0 || Holds(holders[copy.expert], w)) continue;
        const double time = (work[w] + copy.load) / input.workers[w].speed;
        if (time <= *keep_within && (keep < 0 || time < keep_time)) {
          keep = w;
          keep_time = time;
        }
      }
      if (keep >= 0) {
        give(copy, keep);
      } else {
        rest.push_back(copy);
      }
    }
    order = std::move(rest);
  }
  for (const Copy& copy : order) {
    int best = -1;
    double best_time = 0;
    for (int w = 0; w < static_cast<int>(input.workers.size()); ++w) {
      if (capacity[w] == 0 || Holds(holders[copy.expert], w)) continue;
      const double time = (work[w] + copy.load) / input.workers[w].speed;
      if (best < 0 || time < best_time ||
          (time == best_time && room[w] > room[best])) {
        best = w;
        best_time = time;
      }
    }
    if (best < 0) return std::nullopt;
    give(copy, best);
  }
  return holders;
}

// The layer placed by AssignLayer; with current holders, placed again
// keeping experts where they are, when the slowest time stays within
// kKeepSlack of the first placement's. Kept copies may fill a worker up to
// a bound: the slowest time allowed, or less, so the copies that must move
// still find room; the highest bound that works keeps the most.
std::optional<LayerHolders> AssignLayerKeeping(
    const PlannerInput& input, int layer, const std::vector<int>& copies,
    const std::vector<int64_t>& capacity, const std::vector<int64_t>& room) {
  std::optional<LayerHolders> balanced =
      AssignLayer(input, layer, copies, capacity, room);
  if (!balanced.has_value() || input.current_holders.empty()) return balanced;
  const double within = MaxTime(input, layer, *balanced) * (1 + kKeepSlack);
  for (int step = 0; step <= 10; ++step) {
    std::optional<LayerHolders> kept = AssignLayer(
        input, layer, copies, capacity, room, within * (1 - 0.05 * step));
    if (kept.has_value() && MaxTime(input, layer, *kept) <= within) {
      return kept;
    }
  }
  return balanced;
}

// Spends the replica budget one copy at a time, each on the hottest expert
// (highest load per copy) whose copy lowers its layer's slowest-worker time.
// A copy is either added on the worker with room that lowers that time most,
// or the whole layer is placed again with it: the second finds a way when
// every worker with room already has too much of the layer to take half of a
// hot expert.
class ReplicaPlacer {
 public:
  ReplicaPlacer(const PlannerInput& input, std::vector<int64_t> free,
                PlacementPlan& plan)
      : input_(input), plan_(plan), free_(std::move(free)) {
    for (int layer = 0; layer < input.num_layers; ++layer) {
      options_.push_back(BestOption(layer));
    }
  }

  void Run() {
    for (int copies = 0; copies < input_.replica_budget; ++copies) {
      int layer = -1;
      for (int l = 0; l < input_.num_layers; ++l) {
        if (options_[l].has_value() &&
            (layer < 0 || options_[l]->heat > options_[layer]->heat)) {
          layer = l;
        }
      }
      if (layer < 0) return;  // no copy helps, or memory is full
      Apply(layer, std::move(options_[layer]->holders));
    }
  }

 private:
  // A layer's placement with one more copy of an expert.
  struct Option {
    double heat;  // the expert's load per copy before the copy
    LayerHolders holders;
  };

  std::span<std::vector<int>> Holders(int layer) const {
    return std::span(plan_.holders)
        .subspan(static_cast<size_t>(layer) * input_.num_experts,
                 input_.num_experts);
  }

  std::vector<int64_t> Delta(int layer, const LayerHolders& holders) const {
    const int num_workers = static_cast<int>(free_.size());
    std::vector<int64_t> delta = Counts(holders, num_workers);
    const std::vector<int64_t> now = Counts(Holders(layer), num_workers);
    for (int w = 0; w < num_workers; ++w) delta[w] -= now[w];
    return delta;
  }

  bool Fits(const std::vector<int64_t>& delta) const {
    for (size_t w = 0; w < delta.size(); ++w) {
      if (delta[w] > free_[w]) return false;
    }
    return true;
  }

  void Apply(int layer, LayerHolders holders) {
    const std::vector<int64_t> delta = Delta(layer, holders);
    bool freed = false;
    for (size_t w = 0; w < delta.size(); ++w) {
      free_[w] -= delta[w];
      freed = freed || delta[w] < 0;
    }
    std::move(holders.begin(), holders.end(), Holders(layer).begin());
    options_[layer] = BestOption(layer);
    // Another layer's option stays while memory still holds it; a layer
    // without one is looked at again when the move freed memory.
    for (int l = 0; l < input_.num_layers; ++l) {
      if (l == layer) continue;
      if (options_[l].has_value() ? !Fits(Delta(l, options_[l]->holders))
                                  : freed) {
        options_[l] = BestOption(l);
      }
    }
  }

  std::optional<Option> BestOption(int layer) const {
    const auto span = Holders(layer);
    const LayerHolders current(span.begin(), span.end());
    const std::vector<double> times =
        LayerTimes(current, input_.workers, input_.load, layer);
    const int slowest = static_cast<int>(
        std::max_element(times.begin(), times.end()) - times.begin());
    // A copy must bring the slowest time below this, beyond rounding noise.
    const double to_beat = times[slowest] * (1 - 1e-9);
    const int num_workers = static_cast<int>(free_.size());
    std::vector<int64_t> capacity = Counts(current, num_workers);
    for (int w = 0; w < num_workers; ++w) capacity[w] += free_[w];
    std::vector<int> copies;
    for (const std::vector<int>& h : current) {
      copies.push_back(static_cast<int>(h.size()));
    }
    // Only experts of the slowest worker, hottest first: the copy must take
    // load off it.
    std::vector<std::pair<double, int>> candidates;
    for (int expert = 0; expert < input_.num_experts; ++expert) {
      const double load =
          ExpertLoad(input_.load, input_.num_experts, layer, expert);
      if (load > 0 && Holds(current[expert], slowest)) {
        candidates.emplace_back(load / copies[expert], expert);
      }
    }
    std::stable_sort(
        candidates.begin(), candidates.end(),
        [](const auto& a, const auto& b) { return a.first > b.first; });
    for (const auto& [heat, expert] : candidates) {
      std::optional<LayerHolders> best = AddCopy(layer, current, expert);
      double best_time =
          best.has_value() ? MaxTime(input_, layer, *best) : to_beat;
      ++copies[expert];
      std::optional<LayerHolders> again =
          AssignLayer(input_, layer, copies, capacity, capacity);
      --copies[expert];
      if (again.has_value()) {
        const double time = MaxTime(input_, layer, *again);
        if (time < best_time) {
          best = std::move(again);
          best_time = time;
        }
      }
      if (best.has_value() && best_time < to_beat) {
        return Option{heat, std::move(*best)};
      }
    }
    return std::nullopt;
  }

  // The layer with one more copy of `expert` on the worker with room that
  // makes the slowest time smallest; of equals, the one with the most room.
  std::optional<LayerHolders> AddCopy(int layer, const LayerHolders& current,
                                      int expert) const {
    int best = -1;
    double best_time = 0;
    LayerHolders holders = current;
    for (int w = 0; w < static_cast<int>(free_.size()); ++w) {
      if (free_[w] == 0 || Holds(current[expert], w)) continue;
      holders[expert].push_back(w);
      const double time = MaxTime(input_, layer, holders);
      holders[expert].pop_back();
      if (best < 0 || time < best_time ||
          (time == best_time && free_[w] > free_[best])) {
        best = w;
        best_time = time;
      }
    }
    if (best < 0) return std::nullopt;
    holders[expert].push_back(best);
    return holders;
  }

  const PlannerInput& input_;
  PlacementPlan& plan_;
  std::vector<int64_t> free_;                   // slots left per worker
  std::vector<std::optional<Option>> options_;  // per layer
};

}  // namespace

absl::StatusOr<PlacementPlan> PlanPlacement(const PlannerInput& input) {
  MOE_RETURN_IF_ERROR(ValidatePlannerInput(input));
  MOE_ASSIGN_OR_RETURN(const std::vector<int64_t> slots, WorkerSlots(input));
  PlacementPlan plan;
  plan.version = input.version;
  plan.model = input.model;
  plan.num_layers = input.num_layers;
  plan.num_experts = input.num_experts;
  plan.expert_bytes = input.expert_bytes;
  plan.workers = input.workers;
  plan.holders.resize(static_cast<size_t>(input.num_layers) *
                      input.num_experts);
  const std::vector<std::vector<int64_t>> quota =
      LayerQuotas(slots, input.num_layers);
  const std::vector<int> copies(input.num_experts, input.copies);
  std::vector<int64_t> free = slots;
  for (int layer = 0; layer < input.num_layers; ++layer) {
    // LayerQuotas leaves room for every copy of every layer's experts; with
    // several copies, the quotas of too few workers may not.
    std::optional<LayerHolders> placed =
        AssignLayerKeeping(input, layer, copies, quota[layer], free);
    if (!placed.has_value()) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "cannot place ", input.copies, " copies of every expert of layer ",
          layer, " on distinct workers: too few workers have room for them"));
    }
    LayerHolders holders = std::move(*placed);
    const std::vector<int64_t> counts =
        Counts(holders, static_cast<int>(slots.size()));
    for (size_t w = 0; w < slots.size(); ++w) free[w] -= counts[w];
    std::move(holders.begin(), holders.end(),
              plan.holders.begin() +
                  static_cast<ptrdiff_t>(layer) * input.num_experts);
  }
  ReplicaPlacer(input, std::move(free), plan).Run();
  return plan;
}

std::vector<std::vector<int>> CurrentHolders(
    const PlacementPlan& plan, const std::vector<WorkerSpec>& workers) {
  std::vector<int> index_of(plan.workers.size(), -1);
  for (size_t w = 0; w < plan.workers.size(); ++w) {
    for (size_t i = 0; i < workers.size(); ++i) {
      if (workers[i].id == plan.workers[w].id)
        index_of[w] = static_cast<int>(i);
    }
  }
  std::vector<std::vector<int>> holders(plan.holders.size());
  for (size_t e = 0; e < plan.holders.size(); ++e) {
    for (int w : plan.holders[e]) {
      if (index_of[w] >= 0) holders[e].push_back(index_of[w]);
    }
  }
  return holders;
}

int64_t CopiesToLoad(const PlacementPlan& from, const PlacementPlan& to) {
  int64_t count = 0;
  for (size_t i = 0; i < to.holders.size(); ++i) {
    for (int holder : to.holders[i]) {
      const int before = from.WorkerIndex(to.workers[holder].id);
      if (before < 0 || i >= from.holders.size() ||
          !Holds(from.holders[i], before)) {
        ++count;
      }
    }
  }
  return count;
}

std::vector<double> PredictedLayerTimes(const PlacementPlan& plan,
                                        const std::vector<double>& load,
                                        int layer) {
  return LayerTimes(std::span(plan.holders)
                        .subspan(static_cast<size_t>(layer) * plan.num_experts,
                                 plan.num_experts),
                    plan.workers, load, layer);
}

}  // namespace moe

#include "core/placement.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <optional>
#include <span>
#include <unordered_map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/file_util.h"
#include "core/status_macros.h"

namespace moe {
namespace {

constexpr char kPlanFormat[] = "moe-placement-plan";

// Bounds the counts read from a plan file, as the config reader does.
constexpr int64_t kMaxPlanInt = int64_t{1} << 30;

std::string ExpertName(int layer, int expert) {
  return absl::StrCat("layer ", layer, " expert ", expert);
}

double ExpertLoad(const std::vector<double>& load, int num_experts, int layer,
                  int expert) {
  return load.empty() ? 1.0
                      : load[static_cast<size_t>(layer) * num_experts + expert];
}

absl::Status ValidateWorkers(const std::vector<WorkerSpec>& workers) {
  if (workers.empty()) return absl::InvalidArgumentError("no workers");
  std::unordered_map<std::string, int> seen;
  for (int w = 0; w < static_cast<int>(workers.size()); ++w) {
    const WorkerSpec& worker = workers[w];
    if (worker.id.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("worker ", w, " has an empty id"));
    }
    if (!seen.emplace(worker.id, w).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("worker id \"", worker.id, "\" appears twice"));
    }
    if (worker.memory_bytes < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("worker ", worker.id, ": memory_bytes ",
                       worker.memory_bytes, " is negative"));
    }
    if (!std::isfinite(worker.speed) || worker.speed <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "worker ", worker.id, ": speed must be a positive number, got ",
          worker.speed));
    }
  }
  return absl::OkStatus();
}

// Reads the typed fields of one JSON object of a plan file; errors name the
// file and the object (`where`).
class ObjectReader {
 public:
  ObjectReader(const nlohmann::json& object, std::string where)
      : object_(object), where_(std::move(where)) {}

  absl::Status Error(const std::string& what) const {
    return absl::InvalidArgumentError(absl::StrCat(where_, ": ", what));
  }

  absl::Status CheckObject() const {
    return object_.is_object() ? absl::OkStatus() : Error("not a JSON object");
  }

  absl::StatusOr<const nlohmann::json*> Field(const char* key) const {
    const auto it = object_.find(key);
    if (it == object_.end()) {
      return Error(absl::StrCat("missing \"", key, "\""));
    }
    return &*it;
  }

  absl::Status Int(const char* key, int64_t min, int64_t max,
                   int64_t* out) const {
    MOE_ASSIGN_OR_RETURN(const nlohmann::json* value, Field(key));
    if (!value->is_number_integer() || value->get<int64_t>() < min ||
        value->get<int64_t>() > max) {
      return Error(absl::StrCat("\"", key, "\" must be an integer in [", min,
                                ", ", max, "], got ", value->dump()));
    }
    *out = value->get<int64_t>();
    return absl::OkStatus();
  }

  absl::Status Int(const char* key, int64_t min, int64_t max, int* out) const {
    int64_t value = 0;
    MOE_RETURN_IF_ERROR(Int(key, min, max, &value));
    *out = static_cast<int>(value);
    return absl::OkStatus();
  }

  absl::Status String(const char* key, std::string* out) const {
    MOE_ASSIGN_OR_RETURN(const nlohmann::json* value, Field(key));
    if (!value->is_string()) {
      return Error(
          absl::StrCat("\"", key, "\" must be a string, got ", value->dump()));
    }
    *out = value->get<std::string>();
    return absl::OkStatus();
  }

  absl::Status PositiveNumber(const char* key, double* out) const {
    MOE_ASSIGN_OR_RETURN(const nlohmann::json* value, Field(key));
    if (!value->is_number() || value->get<double>() <= 0) {
      return Error(absl::StrCat("\"", key, "\" must be a positive number, got ",
                                value->dump()));
    }
    *out = value->get<double>();
    return absl::OkStatus();
  }

  absl::StatusOr<const nlohmann::json*> Array(const char* key) const {
    MOE_ASSIGN_OR_RETURN(const nlohmann::json* value, Field(key));
    if (!value->is_array()) {
      return Error(absl::StrCat("\"", key, "\" must be a list"));
    }
    return value;
  }

 private:
  const nlohmann::json& object_;
  const std::string where_;
};

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
  if (input.replica_budget < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "replica budget must be >= 0, got ", input.replica_budget));
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
  const int64_t num_copies = int64_t{input.num_layers} * input.num_experts;
  std::vector<int64_t> slots;
  for (const WorkerSpec& worker : input.workers) {
    if (worker.memory_bytes < input.expert_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "worker ", worker.id, " has ", worker.memory_bytes,
          " bytes, less than one expert (", input.expert_bytes, " bytes)"));
    }
    slots.push_back(
        std::min(worker.memory_bytes / input.expert_bytes, num_copies));
  }
  const int64_t total = std::accumulate(slots.begin(), slots.end(), int64_t{0});
  if (total < num_copies) {
    const int64_t needed = num_copies * input.expert_bytes;
    const int64_t held = total * input.expert_bytes;
    return absl::ResourceExhaustedError(absl::StrFormat(
        "experts need %d bytes (%d x %d), workers hold %d (room for %d "
        "experts): %d bytes missing (%.2f GiB)",
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
std::optional<LayerHolders> AssignLayer(const PlannerInput& input, int layer,
                                        const std::vector<int>& copies,
                                        std::vector<int64_t> capacity,
                                        std::vector<int64_t> room) {
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
    holders[copy.expert].push_back(best);
    work[best] += copy.load;
    --capacity[best];
    --room[best];
  }
  return holders;
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

// The plan file: one line per worker and per expert, which keeps a plan of
// thousands of experts readable and its changes easy to diff.
std::string PlanText(const PlacementPlan& plan) {
  const nlohmann::json json = PlanToJson(plan);
  std::string text = "{\n";
  for (const char* key : {"format", "version", "model", "num_layers",
                          "num_experts", "expert_bytes"}) {
    absl::StrAppend(&text, "  \"", key, "\": ", json[key].dump(), ",\n");
  }
  text += "  \"workers\": [\n";
  const nlohmann::json& workers = json["workers"];
  for (size_t i = 0; i < workers.size(); ++i) {
    absl::StrAppend(&text, "    ", workers[i].dump(),
                    i + 1 < workers.size() ? ",\n" : "\n");
  }
  text += "  ],\n  \"experts\": [\n";
  // Written by hand for the key order: layer, expert, workers.
  const nlohmann::json& experts = json["experts"];
  for (size_t i = 0; i < experts.size(); ++i) {
    absl::StrAppend(&text, "    {\"layer\":", experts[i]["layer"].dump(),
                    ",\"expert\":", experts[i]["expert"].dump(),
                    ",\"workers\":", experts[i]["workers"].dump(), "}",
                    i + 1 < experts.size() ? ",\n" : "\n");
  }
  return text + "  ]\n}\n";
}

}  // namespace

int PlacementPlan::WorkerIndex(const std::string& id) const {
  for (int w = 0; w < static_cast<int>(workers.size()); ++w) {
    if (workers[w].id == id) return w;
  }
  return -1;
}

int64_t PlacementPlan::ExpertCount(int worker) const {
  int64_t count = 0;
  for (const std::vector<int>& h : holders) {
    count += std::count(h.begin(), h.end(), worker);
  }
  return count;
}

std::vector<std::pair<int, int>> PlacementPlan::ExpertsOf(int worker) const {
  std::vector<std::pair<int, int>> experts;
  for (int layer = 0; layer < num_layers; ++layer) {
    for (int expert = 0; expert < num_experts; ++expert) {
      const std::vector<int>& h = Holders(layer, expert);
      if (std::find(h.begin(), h.end(), worker) != h.end()) {
        experts.emplace_back(layer, expert);
      }
    }
  }
  return experts;
}

absl::Status CheckPlanMatchesModel(const PlacementPlan& plan, int num_layers,
                                   int num_experts) {
  if (plan.num_layers == num_layers && plan.num_experts == num_experts) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "--plan is for ", plan.num_layers, " layers x ", plan.num_experts,
      " experts; the model has ", num_layers, " x ", num_experts));
}

absl::Status ValidatePlan(const PlacementPlan& plan) {
  if (plan.num_layers < 1 || plan.num_experts < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("need at least one layer and one expert, got ",
                     plan.num_layers, " x ", plan.num_experts));
  }
  if (plan.version < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("version must be >= 1, got ", plan.version));
  }
  if (plan.expert_bytes < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("expert_bytes ", plan.expert_bytes, " is negative"));
  }
  MOE_RETURN_IF_ERROR(ValidateWorkers(plan.workers));
  const int64_t num_copies = int64_t{plan.num_layers} * plan.num_experts;
  if (static_cast<int64_t>(plan.holders.size()) != num_copies) {
    return absl::InvalidArgumentError(absl::StrCat(
        "holders has ", plan.holders.size(), " entries, expected ",
        plan.num_layers, " x ", plan.num_experts, " = ", num_copies));
  }
  const int num_workers = static_cast<int>(plan.workers.size());
  std::vector<bool> holds(num_workers);
  for (int layer = 0; layer < plan.num_layers; ++layer) {
    for (int expert = 0; expert < plan.num_experts; ++expert) {
      const std::vector<int>& holders = plan.Holders(layer, expert);
      if (holders.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(ExpertName(layer, expert), " has no worker"));
      }
      std::fill(holds.begin(), holds.end(), false);
      for (int w : holders) {
        if (w < 0 || w >= num_workers) {
          return absl::InvalidArgumentError(
              absl::StrCat(ExpertName(layer, expert), ": worker index ", w,
                           " out of range (", num_workers, " workers)"));
        }
        if (holds[w]) {
          return absl::InvalidArgumentError(
              absl::StrCat(ExpertName(layer, expert), " lists worker ",
                           plan.workers[w].id, " twice"));
        }
        holds[w] = true;
      }
    }
  }
  return absl::OkStatus();
}

nlohmann::json PlanToJson(const PlacementPlan& plan) {
  nlohmann::json workers = nlohmann::json::array();
  for (const WorkerSpec& worker : plan.workers) {
    workers.push_back({{"id", worker.id},
                       {"memory_bytes", worker.memory_bytes},
                       {"speed", worker.speed}});
  }
  nlohmann::json experts = nlohmann::json::array();
  for (int layer = 0; layer < plan.num_layers; ++layer) {
    for (int expert = 0; expert < plan.num_experts; ++expert) {
      nlohmann::json ids = nlohmann::json::array();
      for (int w : plan.Holders(layer, expert)) {
        ids.push_back(plan.workers[w].id);
      }
      experts.push_back(
          {{"layer", layer}, {"expert", expert}, {"workers", std::move(ids)}});
    }
  }
  return {{"format", kPlanFormat},
          {"version", plan.version},
          {"model", plan.model},
          {"num_layers", plan.num_layers},
          {"num_experts", plan.num_experts},
          {"expert_bytes", plan.expert_bytes},
          {"workers", std::move(workers)},
          {"experts", std::move(experts)}};
}

absl::StatusOr<PlacementPlan> PlanFromJson(const nlohmann::json& json,
                                           const std::string& source) {
  const ObjectReader top(json, source);
  MOE_RETURN_IF_ERROR(top.CheckObject());
  std::string format;
  MOE_RETURN_IF_ERROR(top.String("format", &format));
  if (format != kPlanFormat) {
    return top.Error(absl::StrCat("\"format\" must be \"", kPlanFormat,
                                  "\", got \"", format, "\""));
  }
  PlacementPlan plan;
  MOE_RETURN_IF_ERROR(top.Int("version", 1, kMaxPlanInt, &plan.version));
  MOE_RETURN_IF_ERROR(top.String("model", &plan.model));
  MOE_RETURN_IF_ERROR(top.Int("num_layers", 1, kMaxPlanInt, &plan.num_layers));
  MOE_RETURN_IF_ERROR(
      top.Int("num_experts", 1, kMaxPlanInt, &plan.num_experts));
  MOE_RETURN_IF_ERROR(top.Int("expert_bytes", 0,
                              std::numeric_limits<int64_t>::max(),
                              &plan.expert_bytes));

  MOE_ASSIGN_OR_RETURN(const nlohmann::json* workers, top.Array("workers"));
  std::unordered_map<std::string, int> worker_index;
  for (size_t i = 0; i < workers->size(); ++i) {
    const ObjectReader entry((*workers)[i],
                             absl::StrCat(source, ": workers[", i, "]"));
    MOE_RETURN_IF_ERROR(entry.CheckObject());
    WorkerSpec worker;
    MOE_RETURN_IF_ERROR(entry.String("id", &worker.id));
    MOE_RETURN_IF_ERROR(entry.Int("memory_bytes", 0,
                                  std::numeric_limits<int64_t>::max(),
                                  &worker.memory_bytes));
    MOE_RETURN_IF_ERROR(entry.PositiveNumber("speed", &worker.speed));
    if (!worker_index.emplace(worker.id, static_cast<int>(i)).second) {
      return entry.Error(
          absl::StrCat("worker id \"", worker.id, "\" appears twice"));
    }
    plan.workers.push_back(std::move(worker));
  }

  // Entries may come in any order; the map sorts them row-major and catches
  // repeats before anything of layers x experts size is allocated.
  MOE_ASSIGN_OR_RETURN(const nlohmann::json* experts, top.Array("experts"));
  std::map<std::pair<int, int>, std::vector<int>> listed;
  for (size_t i = 0; i < experts->size(); ++i) {
    const ObjectReader entry((*experts)[i],
                             absl::StrCat(source, ": experts[", i, "]"));
    MOE_RETURN_IF_ERROR(entry.CheckObject());
    int layer = 0;
    int expert = 0;
    MOE_RETURN_IF_ERROR(entry.Int("layer", 0, plan.num_layers - 1, &layer));
    MOE_RETURN_IF_ERROR(entry.Int("expert", 0, plan.num_experts - 1, &expert));
    MOE_ASSIGN_OR_RETURN(const nlohmann::json* ids, entry.Array("workers"));
    std::vector<int> holders;
    for (const nlohmann::json& id : *ids) {
      if (!id.is_string()) {
        return entry.Error(
            absl::StrCat("\"workers\" must list worker ids, got ", id.dump()));
      }
      const auto it = worker_index.find(id.get<std::string>());
      if (it == worker_index.end()) {
        return entry.Error(
            absl::StrCat("unknown worker \"", id.get<std::string>(), "\""));
      }
      holders.push_back(it->second);
    }
    if (!listed.emplace(std::pair(layer, expert), std::move(holders)).second) {
      return entry.Error(
          absl::StrCat(ExpertName(layer, expert), " is listed twice"));
    }
  }
  const int64_t num_copies = int64_t{plan.num_layers} * plan.num_experts;
  for (auto& [key, holders] : listed) {
    const int64_t next = static_cast<int64_t>(plan.holders.size());
    if (int64_t{key.first} * plan.num_experts + key.second != next) break;
    plan.holders.push_back(std::move(holders));
  }
  if (static_cast<int64_t>(plan.holders.size()) < num_copies) {
    const int64_t missing = static_cast<int64_t>(plan.holders.size());
    return top.Error(
        absl::StrCat(ExpertName(static_cast<int>(missing / plan.num_experts),
                                static_cast<int>(missing % plan.num_experts)),
                     " is missing from \"experts\""));
  }
  const absl::Status valid = ValidatePlan(plan);
  if (!valid.ok()) return top.Error(std::string(valid.message()));
  return plan;
}

absl::StatusOr<PlacementPlan> ReadPlan(const std::string& path) {
  MOE_ASSIGN_OR_RETURN(const nlohmann::json json, ReadJsonFile(path));
  return PlanFromJson(json, path);
}

absl::Status WritePlan(const PlacementPlan& plan, const std::string& path) {
  MOE_RETURN_IF_ERROR(ValidatePlan(plan));
  return WriteStringToFile(path, PlanText(plan));
}

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
  const std::vector<int> one_copy(input.num_experts, 1);
  std::vector<int64_t> free = slots;
  for (int layer = 0; layer < input.num_layers; ++layer) {
    // LayerQuotas leaves room for every expert of every layer.
    LayerHolders holders =
        *AssignLayer(input, layer, one_copy, quota[layer], free);
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

std::vector<double> PredictedLayerTimes(const PlacementPlan& plan,
                                        const std::vector<double>& load,
                                        int layer) {
  return LayerTimes(std::span(plan.holders)
                        .subspan(static_cast<size_t>(layer) * plan.num_experts,
                                 plan.num_experts),
                    plan.workers, load, layer);
}

}  // namespace moe

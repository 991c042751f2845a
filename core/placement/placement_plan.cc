#include "core/placement/placement_plan.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <unordered_map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"

namespace moe {
namespace {

constexpr char kPlanFormat[] = "moe-placement-plan";

// Bounds the counts read from a plan file, as the config reader does.
constexpr int64_t kMaxPlanInt = int64_t{1} << 30;

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

std::string ExpertName(int layer, int expert) {
  return absl::StrCat("layer ", layer, " expert ", expert);
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

}  // namespace moe

#include "tools/moe_plan/placement_tool.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "core/placement/placement_planner.h"
#include "core/util/byte_size.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"

namespace moe {

absl::StatusOr<std::vector<WorkerSpec>> ParseWorkerSpecs(
    absl::string_view text) {
  std::vector<WorkerSpec> workers;
  std::unordered_set<std::string> ids;
  for (absl::string_view item :
       absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    item = absl::StripAsciiWhitespace(item);
    auto error = [&](absl::string_view what) {
      return absl::InvalidArgumentError(
          absl::StrCat("--workers item \"", item, "\": ", what));
    };
    const size_t equals = item.find('=');
    if (equals == absl::string_view::npos || equals == 0) {
      return error("expected ID=MEMORY[@SPEED], e.g. w0=24GiB@1.5");
    }
    WorkerSpec worker;
    worker.id = std::string(absl::StripAsciiWhitespace(item.substr(0, equals)));
    const absl::string_view rest = item.substr(equals + 1);
    const size_t at = rest.find('@');
    absl::StatusOr<int64_t> memory =
        ParseByteSize(absl::StripAsciiWhitespace(rest.substr(0, at)));
    if (!memory.ok()) return error(memory.status().message());
    worker.memory_bytes = *memory;
    if (at != absl::string_view::npos) {
      const absl::string_view speed = rest.substr(at + 1);
      if (!absl::SimpleAtod(speed, &worker.speed) ||
          !std::isfinite(worker.speed) || worker.speed <= 0) {
        return error(
            absl::StrCat("speed \"", speed, "\" is not a positive number"));
      }
    }
    if (!ids.insert(worker.id).second) {
      return error(absl::StrCat("worker ", worker.id, " is listed twice"));
    }
    workers.push_back(std::move(worker));
  }
  if (workers.empty()) {
    return absl::InvalidArgumentError(
        "--workers lists no workers (e.g. w0=24GiB,w1=24GiB)");
  }
  return workers;
}

int64_t ExpertWeightBytes(const ModelConfig& config) {
  const int64_t hidden = config.hidden_size;
  const int64_t intermediate = config.intermediate_size;
  const int64_t weights = 3 * hidden * intermediate;
  if (config.weight_format == WeightFormat::kFp8) {
    return weights + (2 * intermediate + hidden) * int64_t{sizeof(float)};
  }
  return 2 * weights;
}

absl::StatusOr<std::vector<double>> ReadLoadMatrix(const std::string& path,
                                                   int num_layers,
                                                   int num_experts) {
  MOE_ASSIGN_OR_RETURN(const nlohmann::json file, ReadJsonFile(path));
  // moe-admin load's report holds the matrix under "load".
  const nlohmann::json& json =
      file.is_object() && file.contains("load") ? file["load"] : file;
  if (!json.is_array() || static_cast<int>(json.size()) != num_layers) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": expected a list of ", num_layers, " rows (one per layer) of ",
        num_experts, " token counts"));
  }
  std::vector<double> load;
  for (int layer = 0; layer < num_layers; ++layer) {
    const nlohmann::json& row = json[layer];
    if (!row.is_array() || static_cast<int>(row.size()) != num_experts) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": row ", layer, " must list ", num_experts,
                       " token counts (one per expert)"));
    }
    for (int expert = 0; expert < num_experts; ++expert) {
      if (!row[expert].is_number() || row[expert].get<double>() < 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": row ", layer, ", entry ", expert,
            " must be a non-negative number, got ", row[expert].dump()));
      }
      load.push_back(row[expert].get<double>());
    }
  }
  return load;
}

std::string FormatPlacementReport(const PlacementPlan& plan,
                                  const std::vector<double>& load) {
  const int num_workers = static_cast<int>(plan.workers.size());
  double total_speed = 0;
  for (const WorkerSpec& worker : plan.workers) total_speed += worker.speed;

  // A worker's share in a layer: its predicted time over the time every
  // worker would take if the layer's load were split in proportion to speed.
  std::vector<double> max_share(num_workers, 0.0);
  std::vector<double> sum_share(num_workers, 0.0);
  double slowest_total = 0;
  double even_total = 0;
  double worst_share = 0;
  int worst_layer = -1;
  int loaded_layers = 0;
  for (int layer = 0; layer < plan.num_layers; ++layer) {
    const std::vector<double> times = PredictedLayerTimes(plan, load, layer);
    double layer_load = plan.num_experts;
    if (!load.empty()) {
      const auto row =
          load.begin() + static_cast<ptrdiff_t>(layer) * plan.num_experts;
      layer_load = std::accumulate(row, row + plan.num_experts, 0.0);
    }
    const double even = layer_load / total_speed;
    if (even <= 0) continue;  // an idle layer has no slowest worker
    ++loaded_layers;
    const double slowest = *std::max_element(times.begin(), times.end());
    slowest_total += slowest;
    even_total += even;
    if (slowest / even > worst_share) {
      worst_share = slowest / even;
      worst_layer = layer;
    }
    for (int w = 0; w < num_workers; ++w) {
      max_share[w] = std::max(max_share[w], times[w] / even);
      sum_share[w] += times[w] / even;
    }
  }

  const int64_t num_copies = int64_t{plan.num_layers} * plan.num_experts;
  int64_t total_held = 0;
  for (int w = 0; w < num_workers; ++w) total_held += plan.ExpertCount(w);
  size_t fewest_holders = plan.workers.size();
  for (const std::vector<int>& holders : plan.holders) {
    fewest_holders = std::min(fewest_holders, holders.size());
  }
  std::string out = absl::StrFormat(
      "%s: %d layers x %d experts of %s, %d experts + %d replicas on %d "
      "workers (every expert on at least %d), %s load\n\n",
      plan.model, plan.num_layers, plan.num_experts,
      FormatBytes(plan.expert_bytes), num_copies, total_held - num_copies,
      num_workers, fewest_holders, load.empty() ? "uniform" : "given");
  int id_width = 6;
  for (const WorkerSpec& worker : plan.workers) {
    id_width = std::max(id_width, static_cast<int>(worker.id.size()));
  }
  absl::StrAppendFormat(&out, "%-*s %10s %6s %8s %10s %7s %9s %9s\n", id_width,
                        "worker", "memory", "speed", "experts", "bytes",
                        "of mem", "max load", "mean load");
  for (int w = 0; w < num_workers; ++w) {
    const WorkerSpec& worker = plan.workers[w];
    const int64_t count = plan.ExpertCount(w);
    const double bytes = static_cast<double>(count) * plan.expert_bytes;
    const std::string used =
        worker.memory_bytes > 0
            ? absl::StrFormat("%.1f%%", 100 * bytes / worker.memory_bytes)
            : "-";
    absl::StrAppendFormat(
        &out, "%-*s %10s %6.2f %8d %10s %7s %8.2fx %8.2fx\n", id_width,
        worker.id, FormatBytes(worker.memory_bytes), worker.speed, count,
        FormatBytes(bytes), used, max_share[w],
        loaded_layers > 0 ? sum_share[w] / loaded_layers : 0.0);
  }
  out +=
      "\nload: a worker's predicted time in a layer over the time of an even "
      "split\nof the layer's load by speed (1.00x: its fair share); max and "
      "mean over layers\n";
  if (loaded_layers == 0) return out + "no layer has load\n";
  absl::StrAppendFormat(
      &out,
      "slowest worker: %.2fx an even split over all layers, %.2fx in the "
      "worst (layer %d)\n",
      slowest_total / even_total, worst_share, worst_layer);
  return out;
}

}  // namespace moe

#include "tools/moe_admin/admin_report.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace moe {

std::string FormatRouterStatus(const v1::RouterStatus& status) {
  std::string out = absl::StrFormat(
      "requests: %d running, %d queued (batch of %d)\n"
      "KV cache: %d of %d blocks free\n"
      "plan version: %d%s\n",
      status.running_requests(), status.queued_requests(),
      status.max_batch_size(), status.kv_blocks_free(),
      status.kv_blocks_total(), status.placement_version(),
      status.placement_version() == 0 ? " (all experts in the router)" : "");
  if (status.workers().empty()) return out;
  absl::StrAppendFormat(&out, "\n%-8s %-22s %-5s %9s %7s %11s %10s\n", "worker",
                        "address", "state", "calls", "failed", "failed over",
                        "recoveries");
  for (const v1::WorkerStatus& worker : status.workers()) {
    absl::StrAppendFormat(
        &out, "%-8s %-22s %-5s %9d %7d %11d %10d\n", worker.worker_id(),
        worker.address(), worker.down() ? "down" : "up", worker.calls(),
        worker.failed_calls(), worker.rows_failed_over(), worker.recoveries());
  }
  return out;
}

absl::StatusOr<nlohmann::json> LoadReportToJson(const v1::LoadReport& report) {
  const int layers = report.num_layers(), experts = report.num_experts();
  if (layers < 0 || experts < 0 ||
      report.routed_tokens_size() != int64_t{layers} * experts) {
    return absl::InvalidArgumentError(
        absl::StrCat("the router reported ", report.routed_tokens_size(),
                     " routed token counts for ", layers, " layers x ", experts,
                     " experts"));
  }
  nlohmann::json load = nlohmann::json::array();
  for (int layer = 0; layer < layers; ++layer) {
    nlohmann::json row = nlohmann::json::array();
    for (int expert = 0; expert < experts; ++expert) {
      row.push_back(report.routed_tokens(layer * experts + expert));
    }
    load.push_back(std::move(row));
  }
  nlohmann::json workers = nlohmann::json::array();
  for (const v1::WorkerLoad& worker : report.workers()) {
    workers.push_back({{"id", worker.worker_id()},
                       {"calls", worker.calls()},
                       {"rows", worker.rows()},
                       {"compute_seconds", worker.compute_seconds()},
                       {"queue_seconds", worker.queue_seconds()},
                       {"round_trip_seconds", worker.round_trip_seconds()}});
  }
  return nlohmann::json{{"window_seconds", report.window_seconds()},
                        {"load", std::move(load)},
                        {"workers", std::move(workers)}};
}

std::string FormatLoadSummary(const v1::LoadReport& report) {
  int64_t routed = 0;
  for (int64_t count : report.routed_tokens()) routed += count;
  std::string out = absl::StrFormat(
      "%d tokens routed in the last %.1f s (%d layers x %d "
      "experts)\n",
      routed, report.window_seconds(), report.num_layers(),
      report.num_experts());
  for (const v1::WorkerLoad& worker : report.workers()) {
    absl::StrAppendFormat(
        &out, "%-8s %9d rows in %7d calls, computing %.3f s, queued %.3f s\n",
        worker.worker_id(), worker.rows(), worker.calls(),
        worker.compute_seconds(), worker.queue_seconds());
  }
  return out;
}

std::string FormatPlanChange(const v1::PlanChange& change) {
  std::string out = absl::StrFormat(
      "plan version %d -> %d in %.3f s: loading %.3f s, switching %.3f s "
      "(%d switches between steps), unloading %.3f s\n",
      change.from_version(), change.to_version(), change.total_seconds(),
      change.load_seconds(), change.switch_seconds(), change.switches(),
      change.unload_seconds());
  absl::StrAppendFormat(&out, "%-8s %8s %10s %6s\n", "worker", "loaded",
                        "unloaded", "holds");
  for (const v1::WorkerChange& worker : change.workers()) {
    absl::StrAppendFormat(&out, "%-8s %8d %10d %6d\n", worker.worker_id(),
                          worker.experts_loaded(), worker.experts_unloaded(),
                          worker.experts_held());
  }
  for (const std::string& error : change.unload_errors()) {
    absl::StrAppend(&out, "not unloaded (kept, unused): ", error, "\n");
  }
  return out;
}

std::string FormatWorkerJoined(const v1::WorkerDescription& description) {
  return absl::StrFormat(
      "worker %s joined: %s, %d bytes for experts, %d experts held; "
      "rebalance or apply a plan to give it experts\n",
      description.worker_id(), description.device(),
      description.memory_budget_bytes(), description.experts_size());
}

}  // namespace moe

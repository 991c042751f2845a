#include "tools/moe_bench/bench_report.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"

namespace moe {
namespace {

double PerSecond(double amount, double seconds) {
  return seconds > 0 ? amount / seconds : 0;
}

nlohmann::json SummaryToJson(const LatencySummary& summary) {
  nlohmann::json json = {{"count", summary.count}};
  for (const auto& [name, seconds] :
       {std::pair{"mean", summary.mean}, std::pair{"min", summary.min},
        std::pair{"p50", summary.p50}, std::pair{"p90", summary.p90},
        std::pair{"p99", summary.p99}, std::pair{"max", summary.max}}) {
    // Zeros would read as measured instant latencies.
    json[name] = summary.count > 0 ? nlohmann::json(seconds * 1e3)
                                   : nlohmann::json(nullptr);
  }
  return json;
}

std::string Milliseconds(const LatencySummary& summary, double seconds) {
  if (summary.count == 0) return "-";
  return absl::StrFormat("%.3f", seconds * 1e3);
}

std::string LatencyRow(const std::string& name, const LatencySummary& s) {
  return absl::StrFormat("%-22s %10s %10s %10s %10s %8d\n", name,
                         Milliseconds(s, s.mean), Milliseconds(s, s.p50),
                         Milliseconds(s, s.p90), Milliseconds(s, s.p99),
                         s.count);
}

std::string LoadDescription(const LoadOptions& load) {
  if (load.rate == 0) {
    return absl::StrCat("closed loop, concurrency ", load.concurrency);
  }
  return absl::StrCat("open loop, Poisson rate ", load.rate, "/s, ",
                      load.concurrency > 0
                          ? absl::StrCat("at most ", load.concurrency)
                          : std::string("no cap on requests"),
                      " in flight");
}

std::string StopDescription(const LoadOptions& load) {
  std::vector<std::string> limits;
  if (load.max_requests > 0) {
    limits.push_back(absl::StrCat(load.max_requests, " requests"));
  }
  if (load.duration > absl::ZeroDuration()) {
    limits.push_back(absl::StrCat(absl::ToDoubleSeconds(load.duration), " s"));
  }
  return absl::StrJoin(limits, " or ");
}

}  // namespace

double BenchReport::requests_per_second() const {
  return PerSecond(static_cast<double>(completed), wall_seconds);
}

double BenchReport::output_tokens_per_second() const {
  return PerSecond(static_cast<double>(output_tokens), wall_seconds);
}

BenchReport BuildReport(const BenchSettings& settings,
                        const LoadResult& result) {
  BenchReport report;
  report.settings = settings;
  report.warmup_failed = result.warmup_failed;
  report.wall_seconds = result.wall_seconds;
  std::vector<double> first_token;
  std::vector<double> inter_token;
  std::vector<double> end_to_end;
  for (const RequestRecord& record : result.measured) {
    if (!record.status.ok()) {
      ++report.failed;
      ErrorCount& error =
          report.errors[absl::StatusCodeToString(record.status.code())];
      if (error.count++ == 0) {
        error.first_message = std::string(record.status.message());
      }
      continue;
    }
    ++report.completed;
    report.prompt_tokens += record.prompt_tokens;
    report.output_tokens += record.output_tokens;
    if (record.time_to_first_token.has_value()) {
      first_token.push_back(*record.time_to_first_token);
    }
    inter_token.insert(inter_token.end(), record.inter_token.begin(),
                       record.inter_token.end());
    end_to_end.push_back(record.end_to_end);
  }
  report.time_to_first_token = Summarize(std::move(first_token));
  report.inter_token = Summarize(std::move(inter_token));
  report.end_to_end = Summarize(std::move(end_to_end));
  return report;
}

std::string FormatReportTable(const BenchReport& report) {
  const BenchSettings& settings = report.settings;
  std::string text = absl::StrFormat("moe-bench: %s (model %s, context %d)\n",
                                     settings.address, settings.model,
                                     settings.context_length);
  absl::StrAppendFormat(
      &text,
      "load:       %s; stop after %s; %d warmup; seed %d; timeout %g s\n",
      LoadDescription(settings.load), StopDescription(settings.load),
      settings.load.warmup, settings.load.seed,
      absl::ToDoubleSeconds(settings.load.request_timeout));
  absl::StrAppendFormat(
      &text, "lengths:    prompt tokens %s, output tokens %s\n",
      settings.prompt_tokens.ToString(), settings.output_tokens.ToString());
  absl::StrAppendFormat(&text,
                        "requests:   %d completed, %d failed (warmup: %d "
                        "failed)\n",
                        report.completed, report.failed, report.warmup_failed);
  absl::StrAppendFormat(&text, "wall time:  %.3f s\n", report.wall_seconds);
  absl::StrAppendFormat(
      &text, "throughput: %.2f requests/s, %.1f output tokens/s\n",
      report.requests_per_second(), report.output_tokens_per_second());
  absl::StrAppendFormat(&text, "tokens:     %d prompt, %d output\n",
                        report.prompt_tokens, report.output_tokens);
  absl::StrAppendFormat(&text, "\n%-22s %10s %10s %10s %10s %8s\n",
                        "latency (ms)", "mean", "p50", "p90", "p99", "samples");
  text += LatencyRow("time to first token", report.time_to_first_token);
  text += LatencyRow("inter-token", report.inter_token);
  text += LatencyRow("end to end", report.end_to_end);
  if (!report.errors.empty()) {
    text += "\nerrors (first message of each code):\n";
    for (const auto& [code, error] : report.errors) {
      absl::StrAppendFormat(&text, "  %-20s %6d  %s\n", code, error.count,
                            error.first_message);
    }
  }
  return text;
}

nlohmann::json ReportToJson(const BenchReport& report) {
  const BenchSettings& settings = report.settings;
  const LoadOptions& load = settings.load;
  nlohmann::json json;
  json["settings"] = {
      {"address", settings.address},
      {"model", settings.model},
      {"context_length", settings.context_length},
      {"mode", load.rate > 0 ? "open_loop" : "closed_loop"},
      {"concurrency", load.concurrency},
      {"rate", load.rate > 0 ? nlohmann::json(load.rate) : nullptr},
      {"prompt_tokens", settings.prompt_tokens.ToString()},
      {"output_tokens", settings.output_tokens.ToString()},
      {"requests", load.max_requests},
      {"duration_s", absl::ToDoubleSeconds(load.duration)},
      {"warmup", load.warmup},
      {"seed", load.seed},
      {"request_timeout_s", absl::ToDoubleSeconds(load.request_timeout)},
  };
  json["completed"] = report.completed;
  json["failed"] = report.failed;
  json["warmup_failed"] = report.warmup_failed;
  json["errors"] = nlohmann::json::object();
  json["first_error_messages"] = nlohmann::json::object();
  for (const auto& [code, error] : report.errors) {
    json["errors"][code] = error.count;
    json["first_error_messages"][code] = error.first_message;
  }
  json["wall_time_s"] = report.wall_seconds;
  json["requests_per_s"] = report.requests_per_second();
  json["prompt_tokens"] = report.prompt_tokens;
  json["output_tokens"] = report.output_tokens;
  json["output_tokens_per_s"] = report.output_tokens_per_second();
  json["ttft_ms"] = SummaryToJson(report.time_to_first_token);
  json["itl_ms"] = SummaryToJson(report.inter_token);
  json["e2e_latency_ms"] = SummaryToJson(report.end_to_end);
  return json;
}

absl::Status WriteJsonReport(const BenchReport& report,
                             const std::string& path) {
  // Error messages come from the server and may hold bytes that are not
  // UTF-8; dump() would throw on them without the replace handler.
  const std::string text = ReportToJson(report).dump(
      2, ' ', false, nlohmann::json::error_handler_t::replace);
  std::ofstream out(path);
  out << text << "\n";
  out.close();
  if (!out) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--json: cannot write ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status WriteTokenArrivals(const std::vector<RequestRecord>& records,
                                const std::string& path) {
  std::ofstream out(path);
  for (size_t r = 0; r < records.size(); ++r) {
    for (const auto& [time, tokens] : records[r].arrivals) {
      out << absl::StrFormat("%d %.6f %d\n", r, time, tokens);
    }
  }
  out.close();
  if (!out) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--token-arrivals: cannot write ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace moe

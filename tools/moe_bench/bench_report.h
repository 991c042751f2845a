#ifndef MOE_TOOLS_MOE_BENCH_BENCH_REPORT_H_
#define MOE_TOOLS_MOE_BENCH_BENCH_REPORT_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"
#include "tools/moe_bench/latency_summary.h"
#include "tools/moe_bench/length_distribution.h"
#include "tools/moe_bench/load_generator.h"

namespace moe {

// What a moe-bench run was asked to do, as the report repeats it.
struct BenchSettings {
  std::string address;
  std::string model;  // ModelInfo.name
  int32_t context_length = 0;
  LoadOptions load;
  LengthDistribution prompt_tokens;
  LengthDistribution output_tokens;
};

struct ErrorCount {
  int64_t count = 0;
  std::string first_message;  // of the first request that ended with it
};

// The outcome of a run. Token counts and latencies are over the completed
// requests only: a failed request's partial timings would mix two
// populations (e.g. a refusal's instant "latency").
struct BenchReport {
  BenchSettings settings;
  int64_t completed = 0;
  int64_t failed = 0;
  int64_t warmup_failed = 0;
  std::map<std::string, ErrorCount> errors;  // by gRPC status code name
  double wall_seconds = 0;
  int64_t prompt_tokens = 0;
  int64_t output_tokens = 0;
  LatencySummary time_to_first_token;  // seconds
  LatencySummary inter_token;          // seconds
  LatencySummary end_to_end;           // seconds

  double requests_per_second() const;
  double output_tokens_per_second() const;
};

BenchReport BuildReport(const BenchSettings& settings,
                        const LoadResult& result);

// The report for people: a table of fixed-width lines.
std::string FormatReportTable(const BenchReport& report);

// The report for programs. Latencies are in milliseconds ("ttft_ms",
// "itl_ms", "e2e_latency_ms": count, mean, min, p50, p90, p99, max; null
// but count when there were none), times in seconds.
nlohmann::json ReportToJson(const BenchReport& report);

// Writes ReportToJson to `path`; the error names the file.
absl::Status WriteJsonReport(const BenchReport& report,
                             const std::string& path);

// Writes every measured request's token arrivals to `path`, a line per
// response holding tokens: "REQUEST UNIX_SECONDS TOKENS" (requests numbered
// in the order they ended). The error names the file.
absl::Status WriteTokenArrivals(const std::vector<RequestRecord>& records,
                                const std::string& path);

}  // namespace moe

#endif  // MOE_TOOLS_MOE_BENCH_BENCH_REPORT_H_

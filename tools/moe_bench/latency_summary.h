#ifndef MOE_TOOLS_MOE_BENCH_LATENCY_SUMMARY_H_
#define MOE_TOOLS_MOE_BENCH_LATENCY_SUMMARY_H_

#include <cstdint>
#include <vector>

#include "absl/types/span.h"

namespace moe {

// Percentiles are nearest-rank: the p-th percentile of n values is the
// smallest value such that at least p% of the values are <= it, i.e. the
// value of rank ceil(p / 100 * n) (1-based) in ascending order, rank 1 for
// p = 0. It is always one of the measured values, never an interpolation,
// so p50 <= p90 <= p99 <= max holds by construction.
double NearestRankPercentile(absl::Span<const double> sorted, double percent);

// Count, mean and percentiles of a set of values (in whatever unit they come:
// the summary does not convert). All zero when there are no values; check
// `count` before reading the rest.
struct LatencySummary {
  int64_t count = 0;
  double mean = 0;
  double min = 0;
  double p50 = 0;
  double p90 = 0;
  double p99 = 0;
  double max = 0;
};

LatencySummary Summarize(std::vector<double> values);

}  // namespace moe

#endif  // MOE_TOOLS_MOE_BENCH_LATENCY_SUMMARY_H_

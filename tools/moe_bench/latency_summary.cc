#include "tools/moe_bench/latency_summary.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace moe {

double NearestRankPercentile(absl::Span<const double> sorted, double percent) {
  if (sorted.empty()) return 0;
  const double n = static_cast<double>(sorted.size());
  // For integral percents, percent * n is exact and so is the division when
  // its result is an integer: ceil never rounds up a rank that is exact.
  const double rank = std::ceil(percent * n / 100.0);
  const size_t index = static_cast<size_t>(std::clamp(rank, 1.0, n)) - 1;
  return sorted[index];
}

LatencySummary Summarize(std::vector<double> values) {
  LatencySummary summary;
  if (values.empty()) return summary;
  std::sort(values.begin(), values.end());
  summary.count = static_cast<int64_t>(values.size());
  summary.mean = std::accumulate(values.begin(), values.end(), 0.0) /
                 static_cast<double>(values.size());
  summary.min = values.front();
  summary.max = values.back();
  summary.p50 = NearestRankPercentile(values, 50);
  summary.p90 = NearestRankPercentile(values, 90);
  summary.p99 = NearestRankPercentile(values, 99);
  return summary;
}

}  // namespace moe

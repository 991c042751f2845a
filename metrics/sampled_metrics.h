#ifndef MOE_METRICS_SAMPLED_METRICS_H_
#define MOE_METRICS_SAMPLED_METRICS_H_

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace moe {

// Metrics read from a service's own counters and state when Prometheus
// scrapes, so the hot paths keep the counters they have and nothing more.
class SampledMetrics : public prometheus::Collectable {
 public:
  explicit SampledMetrics(
      std::function<std::vector<prometheus::MetricFamily>()> sample)
      : sample_(std::move(sample)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    return sample_();
  }

 private:
  const std::function<std::vector<prometheus::MetricFamily>()> sample_;
};

using MetricLabels = std::vector<prometheus::ClientMetric::Label>;

// A family of one type; add its series with AddSample.
prometheus::MetricFamily MetricFamilyOf(const std::string& name,
                                        const std::string& help,
                                        prometheus::MetricType type);

// One series of `family` with `labels` and `value` (as its type says).
void AddSample(prometheus::MetricFamily& family, double value,
               MetricLabels labels = {});

}  // namespace moe

#endif  // MOE_METRICS_SAMPLED_METRICS_H_

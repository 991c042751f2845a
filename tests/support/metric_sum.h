#ifndef MOE_TESTS_SUPPORT_METRIC_SUM_H_
#define MOE_TESTS_SUPPORT_METRIC_SUM_H_

#include <string>
#include <vector>

namespace moe::testing {

// In Prometheus text `text`, the sum of the samples whose name is `name`
// and whose labels contain every one of `labels` (each as `key="value"`).
double MetricSum(const std::string& text, const std::string& name,
                 const std::vector<std::string>& labels = {});

}  // namespace moe::testing

#endif  // MOE_TESTS_SUPPORT_METRIC_SUM_H_

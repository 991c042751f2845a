#ifndef MOE_METRICS_METRICS_ENDPOINT_H_
#define MOE_METRICS_METRICS_ENDPOINT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "prometheus/collectable.h"
#include "prometheus/exposer.h"

namespace moe {

// GET /metrics in the Prometheus text format, served by prometheus-cpp's
// pull exposer on `listen` (host:port; port 0 picks a free one), from the
// given collectables (which must outlive it).
class MetricsEndpoint {
 public:
  // Prints "<name> metrics on HOST:PORT" on stdout once it serves: tests
  // and scripts that start a service with port 0 read the address there.
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Start(
      const std::string& listen, const std::string& name,
      const std::vector<std::shared_ptr<prometheus::Collectable>>&
          collectables);

 private:
  explicit MetricsEndpoint(std::unique_ptr<prometheus::Exposer> exposer)
      : exposer_(std::move(exposer)) {}

  std::unique_ptr<prometheus::Exposer> exposer_;
};

// MetricsEndpoint::Start on --metrics-listen; null when the flag is unset.
absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpointFromFlags(
    const std::string& name,
    const std::vector<std::shared_ptr<prometheus::Collectable>>& collectables);

}  // namespace moe

#endif  // MOE_METRICS_METRICS_ENDPOINT_H_

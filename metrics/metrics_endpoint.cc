#include "metrics/metrics_endpoint.h"

#include <exception>
#include <iostream>

#include "CivetServer.h"
#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"

ABSL_FLAG(std::string, metrics_listen, "",
          "host:port to serve Prometheus metrics on (GET /metrics); port 0 "
          "picks a free one (printed); empty: no metrics endpoint");

namespace moe {
namespace {

// civetweb's own account of what went wrong, for the error.
thread_local std::string civetweb_error;

int KeepCivetwebError(const mg_connection*, const char* message) {
  civetweb_error = message;
  return 1;
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(
    const std::string& listen, const std::string& name,
    const std::vector<std::shared_ptr<prometheus::Collectable>>& collectables) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--metrics-listen: \"", listen, "\" is not host:port"));
  }
  std::unique_ptr<prometheus::Exposer> exposer;
  CivetCallbacks callbacks;
  callbacks.log_message = KeepCivetwebError;
  civetweb_error.clear();
  try {
    exposer = std::make_unique<prometheus::Exposer>(listen, /*num_threads=*/1,
                                                    &callbacks);
  } catch (const std::exception& e) {
    // civetweb reports a port it cannot bind by throwing.
    return absl::UnavailableError(
        absl::StrCat("--metrics-listen: cannot listen on ", listen, ": ",
                     civetweb_error.empty() ? e.what() : civetweb_error));
  }
  for (const auto& collectable : collectables) {
    exposer->RegisterCollectable(collectable);
  }
  const std::vector<int> ports = exposer->GetListeningPorts();
  if (ports.empty()) {
    return absl::UnavailableError(
        absl::StrCat("--metrics-listen: cannot listen on ", listen));
  }
  std::cout << name << " metrics on " << listen.substr(0, colon) << ":"
            << ports[0] << std::endl;
  return std::unique_ptr<MetricsEndpoint>(
      new MetricsEndpoint(std::move(exposer)));
}

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpointFromFlags(
    const std::string& name,
    const std::vector<std::shared_ptr<prometheus::Collectable>>& collectables) {
  const std::string listen = absl::GetFlag(FLAGS_metrics_listen);
  if (listen.empty()) return nullptr;
  return MetricsEndpoint::Start(listen, name, collectables);
}

}  // namespace moe

#ifndef MOE_GATEWAY_GATEWAY_METRICS_H_
#define MOE_GATEWAY_GATEWAY_METRICS_H_

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gateway/admission.h"
#include "gateway/api_keys.h"
#include "grpcpp/support/status.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace moe {

// The gateway's Prometheus metrics. Observed as requests go:
//   moe_gateway_requests_total{code} (Generate calls by final gRPC status),
//   moe_gateway_prompt_tokens_total, moe_gateway_completion_tokens_total,
//   moe_gateway_time_to_first_token_seconds,
//   moe_gateway_inter_token_latency_seconds,
//   moe_gateway_request_duration_seconds (histograms).
// Read from admission and the API keys when scraped:
//   moe_gateway_requests_running, moe_gateway_requests_queued,
//   moe_gateway_api_key_requests_total{key},
//   moe_gateway_api_key_tokens_total{key},
//   moe_gateway_api_key_requests_running{key}.
// Thread-safe (prometheus-cpp's metrics are).
class GatewayMetrics {
 public:
  // `keys` may be null (no API keys asked for).
  GatewayMetrics(const Admission& admission, const ApiKeys* keys);

  // A Generate call ended with `status`.
  void ObserveEnd(const grpc::Status& status) {
    // gRPC's codes are absl's, number for number.
    requests_
        .Add({{"code", absl::StatusCodeToString(static_cast<absl::StatusCode>(
                           status.error_code()))}})
        .Increment();
  }
  void ObservePromptTokens(int tokens) { prompt_tokens_.Increment(tokens); }
  // A router message brought `tokens` tokens `since` the request arrived
  // (`first`: the time to first token) or since the previous message (each
  // of its tokens counts the gap split evenly, as they were sampled over it).
  void ObserveTokens(int tokens, absl::Duration since, bool first);
  void ObserveDuration(absl::Duration elapsed) {
    duration_seconds_.Observe(absl::ToDoubleSeconds(elapsed));
  }

  std::vector<std::shared_ptr<prometheus::Collectable>> collectables() const {
    return {registry_, sampled_};
  }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Counter& prompt_tokens_;
  prometheus::Counter& completion_tokens_;
  prometheus::Histogram& first_token_seconds_;
  prometheus::Histogram& inter_token_seconds_;
  prometheus::Histogram& duration_seconds_;
  std::shared_ptr<prometheus::Collectable> sampled_;
};

}  // namespace moe

#endif  // MOE_GATEWAY_GATEWAY_METRICS_H_

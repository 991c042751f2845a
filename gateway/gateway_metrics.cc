#include "gateway/gateway_metrics.h"

#include "metrics/sampled_metrics.h"

namespace moe {
namespace {

using prometheus::Histogram;
using prometheus::MetricFamily;
using prometheus::MetricType;

// Seconds, from 1 ms to 10 minutes: time to first token and whole requests.
Histogram::BucketBoundaries RequestBuckets() {
  return {1e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
          2.5,  5,    10,   30,    60,   120, 300,  600};
}

// Seconds, from 100 us to 10 s: the gap between two tokens.
Histogram::BucketBoundaries TokenBuckets() {
  return {1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025,
          0.05, 0.1,    0.25, 0.5,  1,      2.5,  5,    10};
}

}  // namespace

GatewayMetrics::GatewayMetrics(const Admission& admission, const ApiKeys* keys)
    : registry_(std::make_shared<prometheus::Registry>()),
      requests_(prometheus::BuildCounter()
                    .Name("moe_gateway_requests_total")
                    .Help("Generate calls ended, by gRPC status code")
                    .Register(*registry_)),
      prompt_tokens_(prometheus::BuildCounter()
                         .Name("moe_gateway_prompt_tokens_total")
                         .Help("Prompt tokens of the requests admitted")
                         .Register(*registry_)
                         .Add({})),
      completion_tokens_(prometheus::BuildCounter()
                             .Name("moe_gateway_completion_tokens_total")
                             .Help("Tokens generated for clients")
                             .Register(*registry_)
                             .Add({})),
      first_token_seconds_(
          prometheus::BuildHistogram()
              .Name("moe_gateway_time_to_first_token_seconds")
              .Help("From a request's arrival to its first generated token")
              .Register(*registry_)
              .Add({}, RequestBuckets())),
      inter_token_seconds_(prometheus::BuildHistogram()
                               .Name("moe_gateway_inter_token_latency_seconds")
                               .Help("Gap between two generated tokens")
                               .Register(*registry_)
                               .Add({}, TokenBuckets())),
      duration_seconds_(
          prometheus::BuildHistogram()
              .Name("moe_gateway_request_duration_seconds")
              .Help("From a request's arrival to its end, errors included")
              .Register(*registry_)
              .Add({}, RequestBuckets())) {
  sampled_ = std::make_shared<SampledMetrics>([&admission, keys] {
    std::vector<MetricFamily> families;
    families.push_back(MetricFamilyOf("moe_gateway_requests_running",
                                      "Requests holding a running slot",
                                      MetricType::Gauge));
    AddSample(families.back(), admission.in_flight());
    families.push_back(MetricFamilyOf("moe_gateway_requests_queued",
                                      "Requests waiting for a running slot",
                                      MetricType::Gauge));
    AddSample(families.back(), admission.queued());
    if (keys == nullptr) return families;
    MetricFamily requests = MetricFamilyOf(
        "moe_gateway_api_key_requests_total",
        "Generate calls admitted under each API key", MetricType::Counter);
    MetricFamily tokens =
        MetricFamilyOf("moe_gateway_api_key_tokens_total",
                       "Prompt and generated tokens of each API key's requests",
                       MetricType::Counter);
    MetricFamily running = MetricFamilyOf(
        "moe_gateway_api_key_requests_running",
        "Requests running under each API key", MetricType::Gauge);
    for (const ApiKeys::Usage& usage : keys->Snapshot()) {
      const MetricLabels labels = {{"key", usage.name}};
      AddSample(requests, static_cast<double>(usage.requests), labels);
      AddSample(tokens, static_cast<double>(usage.tokens), labels);
      AddSample(running, usage.in_flight, labels);
    }
    families.push_back(std::move(requests));
    families.push_back(std::move(tokens));
    families.push_back(std::move(running));
    return families;
  });
}

void GatewayMetrics::ObserveTokens(int tokens, absl::Duration since,
                                   bool first) {
  if (tokens <= 0) return;
  completion_tokens_.Increment(tokens);
  const double seconds = absl::ToDoubleSeconds(since);
  if (first) {
    first_token_seconds_.Observe(seconds);
    return;
  }
  for (int i = 0; i < tokens; ++i) {
    inter_token_seconds_.Observe(seconds / tokens);
  }
}

}  // namespace moe

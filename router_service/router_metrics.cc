#include "router_service/router_metrics.h"

#include <utility>

#include "metrics/sampled_metrics.h"

namespace moe {
namespace {

using prometheus::MetricFamily;
using prometheus::MetricType;

// Seconds, from 1 ms to 30 s.
prometheus::Histogram::BucketBoundaries StepBuckets() {
  return {1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1,
          0.25, 0.5,    1,    2.5,  5,     10,   30};
}

// Seconds, from 100 us to 10 s; made once, as every call observes with it.
const prometheus::Histogram::BucketBoundaries& CallBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025,
      0.05, 0.1,    0.25, 0.5,  1,      2.5,  5,    10};
  return *buckets;
}

// The engine's numbers.
void SampleEngine(const BatchEngine& engine, const ModelConfig& config,
                  std::vector<MetricFamily>& families) {
  const EngineStatus status = engine.Status();
  auto one = [&](const char* name, const char* help, MetricType type,
                 double value) {
    families.push_back(MetricFamilyOf(name, help, type));
    AddSample(families.back(), value);
  };
  one("moe_router_requests_running", "Requests in the running batch",
      MetricType::Gauge, status.running);
  one("moe_router_requests_queued", "Requests waiting to join the batch",
      MetricType::Gauge, status.queued);
  one("moe_router_kv_blocks_used", "KV cache blocks held by sequences",
      MetricType::Gauge,
      static_cast<double>(status.kv_blocks_total - status.kv_blocks_free));
  one("moe_router_kv_blocks_free", "KV cache blocks free", MetricType::Gauge,
      static_cast<double>(status.kv_blocks_free));
  one("moe_router_steps_total", "Engine steps run", MetricType::Counter,
      static_cast<double>(status.steps));
  one("moe_router_generated_tokens_total", "Tokens sampled",
      MetricType::Counter, static_cast<double>(status.generated_tokens));
  one("moe_router_prefill_tokens_total",
      "Prompt tokens run, recomputed ones included", MetricType::Counter,
      static_cast<double>(status.prefill_tokens));
  one("moe_router_preemptions_total",
      "Sequences sent back to the queue for want of KV blocks",
      MetricType::Counter, static_cast<double>(status.preemptions));
  families.push_back(MetricFamilyOf("moe_router_routed_tokens_total",
                                    "Rows routed per (layer, expert)",
                                    MetricType::Counter));
  for (size_t i = 0; i < status.routed_counts.size(); ++i) {
    AddSample(families.back(), static_cast<double>(status.routed_counts[i]),
              {{"layer", std::to_string(i / config.num_experts)},
               {"expert", std::to_string(i % config.num_experts)}});
  }
}

// The expert workers' numbers, as the router counts them.
void SampleWorkers(const GrpcExpertDispatch& remote,
                   std::vector<MetricFamily>& families) {
  families.push_back(MetricFamilyOf("moe_router_placement_version",
                                    "Version of the plan in use",
                                    MetricType::Gauge));
  AddSample(families.back(), remote.placement_version());
  MetricFamily up = MetricFamilyOf(
      "moe_router_worker_up", "1 while the worker is up, 0 while it is down",
      MetricType::Gauge);
  MetricFamily calls =
      MetricFamilyOf("moe_router_worker_calls_total",
                     "Compute calls sent to the worker", MetricType::Counter);
  MetricFamily failed = MetricFamilyOf(
      "moe_router_worker_failed_calls_total",
      "Compute calls to the worker that failed", MetricType::Counter);
  MetricFamily rows =
      MetricFamilyOf("moe_router_worker_rows_total", "Rows sent to the worker",
                     MetricType::Counter);
  MetricFamily failed_over =
      MetricFamilyOf("moe_router_worker_rows_failed_over_total",
                     "Rows of the worker's failed calls sent to other holders",
                     MetricType::Counter);
  for (const WorkerCallStats& stats : remote.Stats()) {
    const MetricLabels worker = {{"worker", stats.id}};
    AddSample(up, stats.down ? 0 : 1, worker);
    AddSample(calls, static_cast<double>(stats.calls), worker);
    AddSample(failed, static_cast<double>(stats.failed_calls), worker);
    AddSample(rows, static_cast<double>(stats.rows_sent), worker);
    AddSample(failed_over, static_cast<double>(stats.rows_failed_over), worker);
  }
  for (MetricFamily* family : {&up, &calls, &failed, &rows, &failed_over}) {
    families.push_back(std::move(*family));
  }
}

}  // namespace

RouterMetrics::RouterMetrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      step_seconds_(prometheus::BuildHistogram()
                        .Name("moe_router_step_seconds")
                        .Help("Time of one engine step (forward and sampling)")
                        .Register(*registry_)
                        .Add({}, StepBuckets())),
      step_sequences_(prometheus::BuildHistogram()
                          .Name("moe_router_step_sequences")
                          .Help("Sequences in one engine step's batch")
                          .Register(*registry_)
                          .Add({},
                               prometheus::Histogram::BucketBoundaries{
                                   1, 2, 4, 8, 16, 32, 64, 128, 256})),
      call_seconds_(prometheus::BuildHistogram()
                        .Name("moe_router_worker_call_seconds")
                        .Help("Round trip of a Compute call to a worker")
                        .Register(*registry_)) {
  sampled_ = std::make_shared<SampledMetrics>([this] {
    std::vector<MetricFamily> families;
    if (engine_ != nullptr && config_ != nullptr) {
      SampleEngine(*engine_, *config_, families);
    }
    if (remote_ != nullptr) SampleWorkers(*remote_, families);
    return families;
  });
}

void RouterMetrics::ObserveStep(const StepRecord& step) {
  step_seconds_.Observe(absl::ToDoubleSeconds(step.time));
  step_sequences_.Observe(step.sequences);
}

void RouterMetrics::ObserveCall(const std::string& worker,
                                absl::Duration round_trip) {
  call_seconds_.Add({{"worker", worker}}, CallBuckets())
      .Observe(absl::ToDoubleSeconds(round_trip));
}

}  // namespace moe

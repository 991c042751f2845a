#include "expert_worker/worker_metrics.h"

#include <map>
#include <string>
#include <utility>

#include "metrics/sampled_metrics.h"

namespace moe {
namespace {

// Seconds, from 100 us to 10 s.
prometheus::Histogram::BucketBoundaries SecondsBuckets() {
  return {1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025,
          0.05, 0.1,    0.25, 0.5,  1,      2.5,  5,    10};
}

}  // namespace

WorkerMetrics::WorkerMetrics(const WorkerIdentity& identity,
                             const ExpertStore& store)
    : registry_(std::make_shared<prometheus::Registry>()),
      rows_(prometheus::BuildCounter()
                .Name("moe_worker_rows_total")
                .Help("Rows computed per (layer, expert)")
                .Register(*registry_)),
      // The experts of a pass run side by side on the pool's threads, so
      // no expert has a time of its own: the pass's time is attributed.
      expert_seconds_(
          prometheus::BuildCounter()
              .Name("moe_worker_expert_compute_seconds_total")
              .Help("Compute time per (layer, expert): each pass's time "
                    "shared out over its experts by their rows")
              .Register(*registry_)),
      batches_(prometheus::BuildCounter()
                   .Name("moe_worker_batches_total")
                   .Help("Compute passes (calls of a layer merged into one)")
                   .Register(*registry_)
                   .Add({})),
      compute_seconds_(prometheus::BuildHistogram()
                           .Name("moe_worker_compute_seconds")
                           .Help("Time of one compute pass")
                           .Register(*registry_)
                           .Add({}, SecondsBuckets())),
      queue_wait_seconds_(prometheus::BuildHistogram()
                              .Name("moe_worker_queue_wait_seconds")
                              .Help("Time a Compute call waited in the queue")
                              .Register(*registry_)
                              .Add({}, SecondsBuckets())) {
  const int64_t budget = identity.memory_budget_bytes;
  sampled_ = std::make_shared<SampledMetrics>([this, &store, budget] {
    using prometheus::MetricType;
    std::vector<prometheus::MetricFamily> families;
    auto gauge = [&](const char* name, const char* help, double value) {
      families.push_back(MetricFamilyOf(name, help, MetricType::Gauge));
      AddSample(families.back(), value);
    };
    gauge("moe_worker_queue_depth", "Compute calls waiting",
          queue_ == nullptr ? 0 : queue_->depth());
    gauge("moe_worker_experts", "Experts held",
          static_cast<double>(store.Held().size()));
    gauge("moe_worker_expert_bytes", "Weight bytes of the experts held",
          static_cast<double>(store.BytesHeld()));
    gauge("moe_worker_memory_budget_bytes", "Budget for expert weights",
          static_cast<double>(budget));
    gauge("moe_worker_placement_version", "Version of the plan loaded",
          store.placement_version());
    return families;
  });
}

void WorkerMetrics::Observe(const LayerRun& run) {
  std::map<int, int64_t> rows_per_expert;
  for (const ExpertAssignment& a : *run.assignments)
    ++rows_per_expert[a.expert];
  const std::string layer = std::to_string(run.layer);
  const double seconds = static_cast<double>(run.compute_us) / 1e6;
  const double rows_in_pass = static_cast<double>(run.assignments->size());
  for (const auto& [expert, rows] : rows_per_expert) {
    const prometheus::Labels labels = {{"layer", layer},
                                       {"expert", std::to_string(expert)}};
    rows_.Add(labels).Increment(static_cast<double>(rows));
    expert_seconds_.Add(labels).Increment(seconds * rows / rows_in_pass);
  }
  batches_.Increment();
  compute_seconds_.Observe(seconds);
  for (int64_t wait_us : run.queue_wait_us) {
    queue_wait_seconds_.Observe(static_cast<double>(wait_us) / 1e6);
  }
}

}  // namespace moe

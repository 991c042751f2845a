#ifndef MOE_EXPERT_WORKER_WORKER_METRICS_H_
#define MOE_EXPERT_WORKER_WORKER_METRICS_H_

#include <memory>
#include <vector>

#include "expert_worker/compute_queue.h"
#include "expert_worker/compute_request.h"
#include "expert_worker/expert_store.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace moe {

// An expert worker's Prometheus metrics:
//   moe_worker_rows_total{layer,expert}     rows computed per expert
//   moe_worker_batches_total                compute passes
//   moe_worker_compute_seconds              time of a pass (histogram)
//   moe_worker_expert_compute_seconds_total{layer,expert}
//                                           each pass's time, shared out
//                                           over its experts by their rows
//   moe_worker_queue_wait_seconds           a call's wait (histogram)
//   moe_worker_queue_depth                  calls waiting now
//   moe_worker_experts, moe_worker_expert_bytes, moe_worker_memory_budget_bytes
//   moe_worker_placement_version
// The first five are counted as passes end (Observe, on the compute
// thread); the rest are read from the queue and the store when scraped.
class WorkerMetrics {
 public:
  WorkerMetrics(const WorkerIdentity& identity, const ExpertStore& store);

  // Counts one pass (the compute queue's observer).
  void Observe(const LayerRun& run);
  // The queue whose depth is reported; set before the endpoint serves.
  void set_queue(const ComputeQueue* queue) { queue_ = queue; }
  // What the metrics endpoint serves.
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables() const {
    return {registry_, sampled_};
  }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& rows_;
  prometheus::Family<prometheus::Counter>& expert_seconds_;
  prometheus::Counter& batches_;
  prometheus::Histogram& compute_seconds_;
  prometheus::Histogram& queue_wait_seconds_;
  std::shared_ptr<prometheus::Collectable> sampled_;
  const ComputeQueue* queue_ = nullptr;
};

}  // namespace moe

#endif  // MOE_EXPERT_WORKER_WORKER_METRICS_H_

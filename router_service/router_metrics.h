#ifndef MOE_ROUTER_SERVICE_ROUTER_METRICS_H_
#define MOE_ROUTER_SERVICE_ROUTER_METRICS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "core/model/model_config.h"
#include "prometheus/collectable.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "router_service/batch_engine.h"
#include "router_service/grpc_expert_dispatch.h"

namespace moe {

// The router's Prometheus metrics. Observed as they happen:
//   moe_router_step_seconds, moe_router_step_sequences (histograms)
//   moe_router_worker_call_seconds{worker} (histogram)
// Read from the engine and the dispatch when scraped:
//   moe_router_requests_running, moe_router_requests_queued,
//   moe_router_kv_blocks_used, moe_router_kv_blocks_free,
//   moe_router_steps_total, moe_router_generated_tokens_total,
//   moe_router_prefill_tokens_total, moe_router_preemptions_total,
//   moe_router_routed_tokens_total{layer,expert},
//   moe_router_placement_version, and per expert worker
//   moe_router_worker_up, moe_router_worker_calls_total,
//   moe_router_worker_failed_calls_total, moe_router_worker_rows_total,
//   moe_router_worker_rows_failed_over_total.
class RouterMetrics {
 public:
  RouterMetrics();

  // The engine's step observer (EngineOptions::on_step).
  void ObserveStep(const StepRecord& step);
  // The dispatch's call observer (ExpertTierOptions::on_call).
  void ObserveCall(const std::string& worker, absl::Duration round_trip);
  // What is read when scraped; set both before the endpoint serves
  // (`remote` may be null: experts in process).
  void set_sources(const BatchEngine* engine, const ModelConfig* config,
                   const GrpcExpertDispatch* remote) {
    engine_ = engine;
    config_ = config;
    remote_ = remote;
  }

  std::vector<std::shared_ptr<prometheus::Collectable>> collectables() const {
    return {registry_, sampled_};
  }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Histogram& step_seconds_;
  prometheus::Histogram& step_sequences_;
  prometheus::Family<prometheus::Histogram>& call_seconds_;
  std::shared_ptr<prometheus::Collectable> sampled_;
  const BatchEngine* engine_ = nullptr;
  const ModelConfig* config_ = nullptr;
  const GrpcExpertDispatch* remote_ = nullptr;
};

}  // namespace moe

#endif  // MOE_ROUTER_SERVICE_ROUTER_METRICS_H_

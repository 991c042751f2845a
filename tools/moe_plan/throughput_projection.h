#ifndef MOE_TOOLS_MOE_PLAN_THROUGHPUT_PROJECTION_H_
#define MOE_TOOLS_MOE_PLAN_THROUGHPUT_PROJECTION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/model_config.h"
#include "core/placement/placement_plan.h"
#include "tools/moe_plan/gpu_spec.h"

// A roofline model of one decode step (B sequences, one new token each) of
// the cluster: the router on one worker's GPU, the experts where the plan
// puts them. Every stage of a layer takes max(bytes / achieved bandwidth,
// FLOPs / achieved peak); the stages run one after another, without overlap:
//
//   step = sum over layers of (router + experts + link + overhead) + LM head
//
// - router: the layer's attention, gate and norm weights, plus the K/V cache
//   of B sequences at the context length, at the router GPU's BF16 rate;
//   once a step the LM head (and final norm) the same way.
// - experts: the expected time of the slowest worker. A worker reads each of
//   its experts that at least one token touches, once, and computes
//   2 x 3 x hidden x intermediate FLOPs per routed row at its FP8 rate (BF16
//   for float checkpoints). Workers run in parallel; the layer waits for the
//   slowest, whose expected time is taken over the random routing.
// - link: every row a remote worker needs (once per worker, even when both of
//   a token's experts live there) crosses the router GPU's link out, and its
//   result back, hidden x 2 bytes (BF16) each way; all traffic passes that
//   link, so it is the bottleneck.
// - overhead: a fixed time per layer for kernel launches and
//   synchronization.
//
// Routing: a token picks expert e with min(1, k x e's share of the layer's
// load) (uniform without a load matrix); rows of a replicated expert spread
// evenly over its holders. Tokens are independent, and so, as an
// approximation, is whether a batch touches one expert or another; a
// worker's compute uses its expected rows.
namespace moe {

struct ProjectionInput {
  ModelConfig config;
  PlacementPlan plan;
  // Routed tokens [layers x experts], row-major, as PlannerInput; empty:
  // uniform.
  std::vector<double> load;
  // One GPU per worker of the plan, in the plan's order.
  std::vector<GpuSpec> gpus;
  // The worker whose GPU also hosts the router: embeddings, attention,
  // gates, norms, LM head and the whole K/V cache. Empty: the first.
  std::string router_worker;
  int context = 2048;  // tokens each sequence attends to
  std::vector<int> batches = {1, 8, 32, 64, 128, 256, 512};
  double layer_overhead_s = 30e-6;
  // Achieved over peak, for memory bandwidth and for tensor FLOP/s (not for
  // the link, whose figure is already achieved).
  double bandwidth_efficiency = 0.8;
  double compute_efficiency = 0.6;
  // Kept free on every GPU: CUDA context, library workspaces, activations.
  int64_t reserve_bytes = int64_t{1} << 30;
};

// What limits a step: the largest of its times spent on memory-bound
// stages, compute-bound stages, the link and the per-layer overhead.
enum class StepBound { kMemory, kCompute, kLink, kOverhead };

const char* StepBoundName(StepBound bound);

struct StepProjection {
  int batch = 0;
  double router_s = 0;   // all layers, and the LM head
  double experts_s = 0;  // all layers
  double link_s = 0;
  double overhead_s = 0;
  // router_s + experts_s split by which side of each stage's roofline won.
  double memory_s = 0;
  double compute_s = 0;
  double step_s = 0;
  double tokens_per_s = 0;
  StepBound bound = StepBound::kMemory;
  // Whether the K/V cache of `batch` sequences at the context fits in what
  // the router's GPU has left.
  bool kv_fits = false;
};

struct Projection {
  std::string router_worker;
  int64_t router_weight_bytes = 0;  // on the router's GPU, experts apart
  int64_t router_expert_bytes = 0;  // the router worker's experts
  int64_t kv_bytes_per_sequence = 0;
  int64_t kv_room_bytes = 0;  // router GPU memory less all of the above
  std::vector<StepProjection> steps;
};

// INVALID_ARGUMENT, naming the flag or field, for inputs that are out of
// range, a router worker not in the plan, or a GPU too small for what the
// plan puts on it.
absl::StatusOr<Projection> ProjectThroughput(const ProjectionInput& input);

// Bytes of the router's resident weights (embeddings, LM head unless tied,
// attention, gates, norms): attention in FP8 for FP8 checkpoints, the rest
// BF16 (scales left out).
int64_t RouterWeightBytes(const ModelConfig& config);

// K/V cache bytes of one token over all layers, BF16.
int64_t KvBytesPerToken(const ModelConfig& config);

}  // namespace moe

#endif  // MOE_TOOLS_MOE_PLAN_THROUGHPUT_PROJECTION_H_

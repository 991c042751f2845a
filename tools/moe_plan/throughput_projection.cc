#include "tools/moe_plan/throughput_projection.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <numeric>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/util/status_macros.h"
#include "tools/moe_plan/placement_tool.h"

namespace moe {
namespace {

constexpr int64_t kBf16Bytes = 2;

// Bytes of an attention or expert weight.
int64_t LinearWeightBytes(const ModelConfig& config) {
  return config.weight_format == WeightFormat::kFp8 ? 1 : kBf16Bytes;
}

// q and o [heads x head_dim, hidden], k and v [kv_heads x head_dim, hidden].
int64_t AttentionParams(const ModelConfig& config) {
  return 2 * int64_t{config.hidden_size} * config.head_dim *
         (config.num_heads + config.num_kv_heads);
}

// Attention, the gate [experts, hidden] and the two norms of one layer.
int64_t RouterLayerBytes(const ModelConfig& config) {
  return AttentionParams(config) * LinearWeightBytes(config) +
         (int64_t{config.num_experts} + 2) * config.hidden_size * kBf16Bytes;
}

int64_t KvBytesPerLayerToken(const ModelConfig& config) {
  return 2 * int64_t{config.num_kv_heads} * config.head_dim * kBf16Bytes;
}

// A stage's time on its roofline and which side set it.
struct Stage {
  double seconds = 0;
  bool compute_bound = false;
};

Stage Roofline(double bytes, double bandwidth, double flops, double peak) {
  const double memory_s = bytes / bandwidth;
  const double compute_s = flops / peak;
  return {std::max(memory_s, compute_s), compute_s > memory_s};
}

double Bandwidth(const ProjectionInput& input, const GpuSpec& gpu) {
  return gpu.memory_bandwidth * input.bandwidth_efficiency;
}

double Bf16Peak(const ProjectionInput& input, const GpuSpec& gpu) {
  return gpu.bf16_flops * input.compute_efficiency;
}

double ExpertPeak(const ProjectionInput& input, const GpuSpec& gpu) {
  return input.config.weight_format == WeightFormat::kFp8
             ? gpu.fp8_flops * input.compute_efficiency
             : Bf16Peak(input, gpu);
}

// One layer of the router: its weights and the K/V cache of `batch`
// sequences at the context; FLOPs of the projections and the gate, and of
// q·K and p·V over the context (2 x 2 x heads x head_dim per position).
Stage RouterLayerStage(const ProjectionInput& input, const GpuSpec& gpu,
                       int batch) {
  const ModelConfig& c = input.config;
  const double kv_bytes =
      static_cast<double>(batch) * input.context * KvBytesPerLayerToken(c);
  const double bytes = RouterLayerBytes(c) + kv_bytes;
  const double flops =
      2.0 * batch *
          (AttentionParams(c) + int64_t{c.num_experts} * c.hidden_size) +
      4.0 * batch * c.num_heads * c.head_dim * input.context;
  return Roofline(bytes, Bandwidth(input, gpu), flops, Bf16Peak(input, gpu));
}

// The final norm and the LM head [vocab, hidden], once a step.
Stage LmHeadStage(const ProjectionInput& input, const GpuSpec& gpu, int batch) {
  const ModelConfig& c = input.config;
  const double head = static_cast<double>(c.vocab_size) * c.hidden_size;
  return Roofline((head + c.hidden_size) * kBf16Bytes, Bandwidth(input, gpu),
                  2.0 * batch * head, Bf16Peak(input, gpu));
}

// How one layer's routing reaches one worker.
struct WorkerRouting {
  // For each expert copy the worker holds: the probability that a token
  // sends it a row.
  std::vector<double> row_probability;
  // The probability that one of a token's top-k choices lands here.
  double choice_share = 0;
};

std::vector<WorkerRouting> LayerRouting(const ProjectionInput& input,
                                        int layer) {
  const PlacementPlan& plan = input.plan;
  const int num_experts = plan.num_experts;
  std::vector<double> share(num_experts, 1.0 / num_experts);
  if (!input.load.empty()) {
    const auto row =
        input.load.begin() + static_cast<ptrdiff_t>(layer) * num_experts;
    const double total = std::accumulate(row, row + num_experts, 0.0);
    for (int e = 0; e < num_experts; ++e) {
      share[e] = total > 0 ? row[e] / total : 0;
    }
  }
  std::vector<WorkerRouting> routing(plan.workers.size());
  for (int e = 0; e < num_experts; ++e) {
    const std::vector<int>& holders = plan.Holders(layer, e);
    // A token picks k distinct experts: e with probability k x share.
    const double picked = std::min(1.0, input.config.top_k * share[e]);
    for (int w : holders) {
      routing[w].row_probability.push_back(picked / holders.size());
      routing[w].choice_share += share[e] / holders.size();
    }
  }
  return routing;
}

// A discrete random variable: (value, probability) pairs.
using Distribution = std::vector<std::pair<double, double>>;

// E[max] of independent variables: the sum over the values v, in increasing
// order, of v x (P(max <= v) - P(max < v)).
double ExpectedMaximum(const std::vector<Distribution>& variables) {
  std::vector<double> values;
  for (const Distribution& variable : variables) {
    for (const auto& [value, probability] : variable) values.push_back(value);
  }
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
  double expected = 0;
  double below = 0;
  for (double v : values) {
    double at_most = 1;
    for (const Distribution& variable : variables) {
      double p = 0;
      for (const auto& [value, probability] : variable) {
        if (value <= v) p += probability;
      }
      at_most *= p;
    }
    expected += v * (at_most - below);
    below = at_most;
  }
  return expected;
}

// P(exactly c of the experts are touched), c = 0..n, by `batch` independent
// tokens: expert i is touched with 1 - (1 - p_i)^batch.
std::vector<double> TouchedCounts(const std::vector<double>& row_probability,
                                  int batch) {
  std::vector<double> counts = {1.0};
  for (double p : row_probability) {
    const double touched = 1 - std::pow(1 - p, batch);
    counts.push_back(0);
    for (size_t c = counts.size() - 1; c > 0; --c) {
      counts[c] = counts[c] * (1 - touched) + counts[c - 1] * touched;
    }
    counts[0] *= 1 - touched;
  }
  return counts;
}

// One layer's experts: the expected time of the slowest worker. It is
// compute-bound when the slowest compute alone exceeds the expected slowest
// weight read.
Stage ExpertStage(const ProjectionInput& input,
                  const std::vector<WorkerRouting>& routing, int batch) {
  const double row_flops = 2.0 * 3 * input.config.hidden_size *
                           static_cast<double>(input.config.intermediate_size);
  std::vector<Distribution> times;
  std::vector<Distribution> reads;
  double slowest_compute = 0;
  for (size_t w = 0; w < routing.size(); ++w) {
    const GpuSpec& gpu = input.gpus[w];
    const std::vector<double>& rows = routing[w].row_probability;
    const double compute_s = batch *
                             std::accumulate(rows.begin(), rows.end(), 0.0) *
                             row_flops / ExpertPeak(input, gpu);
    slowest_compute = std::max(slowest_compute, compute_s);
    const double read_s = input.plan.expert_bytes / Bandwidth(input, gpu);
    const std::vector<double> counts = TouchedCounts(rows, batch);
    Distribution& time = times.emplace_back();
    Distribution& read = reads.emplace_back();
    for (size_t c = 0; c < counts.size(); ++c) {
      time.emplace_back(std::max(c * read_s, compute_s), counts[c]);
      read.emplace_back(c * read_s, counts[c]);
    }
  }
  return {ExpectedMaximum(times), slowest_compute > ExpectedMaximum(reads)};
}

// The probability that a token needs the worker: that not all of its k
// distinct choices miss it, 1 - prod_{i<k} (1 - share x E / (E - i)), with
// `share` the worker's part of one choice; exact (hypergeometric) for uniform
// routing without replicas.
double TokenNeedsWorker(double share, int num_experts, int top_k) {
  double miss = 1;
  for (int i = 0; i < top_k; ++i) {
    miss *= std::max(0.0, 1 - share * num_experts / (num_experts - i));
  }
  return 1 - miss;
}

// Rows out to the remote workers and results back, BF16, over the router
// GPU's link.
double LinkSeconds(const ProjectionInput& input,
                   const std::vector<WorkerRouting>& routing, int router,
                   int batch) {
  double rows = 0;
  for (int w = 0; w < static_cast<int>(routing.size()); ++w) {
    if (w == router) continue;
    rows +=
        batch * TokenNeedsWorker(routing[w].choice_share,
                                 input.config.num_experts, input.config.top_k);
  }
  return 2 * rows * input.config.hidden_size * kBf16Bytes /
         input.gpus[router].link_bandwidth;
}

void Tally(const Stage& stage, double times, StepProjection& step) {
  (stage.compute_bound ? step.compute_s : step.memory_s) +=
      times * stage.seconds;
}

StepProjection ProjectStep(
    const ProjectionInput& input,
    const std::vector<std::vector<WorkerRouting>>& routing, int router,
    int batch) {
  const GpuSpec& router_gpu = input.gpus[router];
  const int num_layers = input.config.num_layers;
  StepProjection step;
  step.batch = batch;
  const Stage layer = RouterLayerStage(input, router_gpu, batch);
  const Stage head = LmHeadStage(input, router_gpu, batch);
  step.router_s = num_layers * layer.seconds + head.seconds;
  Tally(layer, num_layers, step);
  Tally(head, 1, step);
  for (const std::vector<WorkerRouting>& layer_routing : routing) {
    const Stage experts = ExpertStage(input, layer_routing, batch);
    step.experts_s += experts.seconds;
    Tally(experts, 1, step);
    step.link_s += LinkSeconds(input, layer_routing, router, batch);
  }
  step.overhead_s = num_layers * input.layer_overhead_s;
  step.step_s = step.router_s + step.experts_s + step.link_s + step.overhead_s;
  step.tokens_per_s = batch / step.step_s;
  // In StepBound's order.
  const double parts[] = {step.memory_s, step.compute_s, step.link_s,
                          step.overhead_s};
  step.bound = static_cast<StepBound>(
      std::max_element(std::begin(parts), std::end(parts)) - std::begin(parts));
  return step;
}

absl::Status ValidateModel(const ProjectionInput& input) {
  const ModelConfig& c = input.config;
  const std::pair<const char*, int> sizes[] = {
      {"hidden_size", c.hidden_size},
      {"intermediate_size", c.intermediate_size},
      {"num_layers", c.num_layers},
      {"num_heads", c.num_heads},
      {"num_kv_heads", c.num_kv_heads},
      {"head_dim", c.head_dim},
      {"vocab_size", c.vocab_size},
      {"num_experts", c.num_experts}};
  for (const auto& [name, value] : sizes) {
    if (value < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model config: ", name, " must be positive, got ", value));
    }
  }
  if (c.top_k < 1 || c.top_k > c.num_experts) {
    return absl::InvalidArgumentError(
        absl::StrCat("model config: top_k must be in [1, ", c.num_experts,
                     "], got ", c.top_k));
  }
  MOE_RETURN_IF_ERROR(ValidatePlan(input.plan));
  if (input.plan.num_layers != c.num_layers ||
      input.plan.num_experts != c.num_experts) {
    return absl::InvalidArgumentError(
        absl::StrCat("the plan is for ", input.plan.num_layers, " layers x ",
                     input.plan.num_experts, " experts; the model has ",
                     c.num_layers, " x ", c.num_experts));
  }
  const size_t num_copies = static_cast<size_t>(c.num_layers) * c.num_experts;
  if (!input.load.empty() && input.load.size() != num_copies) {
    return absl::InvalidArgumentError(
        absl::StrCat("load has ", input.load.size(), " values, expected ",
                     c.num_layers, " x ", c.num_experts));
  }
  for (double load : input.load) {
    if (!std::isfinite(load) || load < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("load values must be non-negative, got ", load));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateSettings(const ProjectionInput& input) {
  if (input.context < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--context must be at least 1, got ", input.context));
  }
  if (input.batches.empty()) {
    return absl::InvalidArgumentError("--batches lists no batch size");
  }
  for (int batch : input.batches) {
    if (batch < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("--batches: a batch must be at least 1, got ", batch));
    }
  }
  const std::pair<const char*, double> efficiencies[] = {
      {"--bandwidth-efficiency", input.bandwidth_efficiency},
      {"--compute-efficiency", input.compute_efficiency}};
  for (const auto& [flag, value] : efficiencies) {
    if (!(value > 0 && value <= 1)) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, " must be in (0, 1], got ", value));
    }
  }
  if (!std::isfinite(input.layer_overhead_s) || input.layer_overhead_s < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--layer-overhead-us must be >= 0, got ",
                     input.layer_overhead_s * 1e6));
  }
  if (input.reserve_bytes < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("reserve_bytes must be >= 0, got ", input.reserve_bytes));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> RouterIndex(const ProjectionInput& input) {
  if (input.router_worker.empty()) return 0;
  const int index = input.plan.WorkerIndex(input.router_worker);
  if (index >= 0) return index;
  std::vector<std::string> ids;
  for (const WorkerSpec& worker : input.plan.workers) ids.push_back(worker.id);
  return absl::InvalidArgumentError(absl::StrCat(
      "--router-worker \"", input.router_worker,
      "\" is not a worker of the plan (", absl::StrJoin(ids, ", "), ")"));
}

// Every GPU holds its experts and the reserve; the router's GPU also the
// router's weights.
absl::Status CheckMemory(const ProjectionInput& input, int router) {
  const PlacementPlan& plan = input.plan;
  if (input.gpus.size() != plan.workers.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("need one GPU per worker: ", input.gpus.size(),
                     " GPUs for ", plan.workers.size(), " workers"));
  }
  for (int w = 0; w < static_cast<int>(plan.workers.size()); ++w) {
    const GpuSpec& gpu = input.gpus[w];
    MOE_RETURN_IF_ERROR(ValidateGpuSpec(gpu));
    const int64_t experts = plan.ExpertCount(w) * plan.expert_bytes;
    const int64_t router_weights =
        w == router ? RouterWeightBytes(input.config) : 0;
    if (experts + router_weights + input.reserve_bytes > gpu.memory_bytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "worker ", plan.workers[w].id, ": its GPU (", gpu.name, ", ",
          FormatBytes(gpu.memory_bytes), ") cannot hold its experts (",
          FormatBytes(experts), ")",
          w == router ? absl::StrCat(", the router's weights (",
                                     FormatBytes(router_weights), ")")
                      : "",
          " and the reserve (", FormatBytes(input.reserve_bytes),
          "); give it less memory in --workers"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

const char* StepBoundName(StepBound bound) {
  switch (bound) {
    case StepBound::kMemory:
      return "memory";
    case StepBound::kCompute:
      return "compute";
    case StepBound::kLink:
      return "link";
    case StepBound::kOverhead:
      return "overhead";
  }
  return "?";
}

int64_t RouterWeightBytes(const ModelConfig& config) {
  const int64_t embeddings = int64_t{config.vocab_size} * config.hidden_size;
  const int64_t lm_head = config.tie_word_embeddings ? 0 : embeddings;
  return config.num_layers * RouterLayerBytes(config) +
         (embeddings + lm_head + config.hidden_size) * kBf16Bytes;
}

int64_t KvBytesPerToken(const ModelConfig& config) {
  return config.num_layers * KvBytesPerLayerToken(config);
}

absl::StatusOr<Projection> ProjectThroughput(const ProjectionInput& input) {
  MOE_RETURN_IF_ERROR(ValidateModel(input));
  MOE_RETURN_IF_ERROR(ValidateSettings(input));
  MOE_ASSIGN_OR_RETURN(const int router, RouterIndex(input));
  MOE_RETURN_IF_ERROR(CheckMemory(input, router));
  const PlacementPlan& plan = input.plan;
  Projection projection;
  projection.router_worker = plan.workers[router].id;
  projection.router_weight_bytes = RouterWeightBytes(input.config);
  projection.router_expert_bytes = plan.ExpertCount(router) * plan.expert_bytes;
  projection.kv_bytes_per_sequence =
      KvBytesPerToken(input.config) * input.context;
  projection.kv_room_bytes =
      input.gpus[router].memory_bytes - input.reserve_bytes -
      projection.router_weight_bytes - projection.router_expert_bytes;
  std::vector<std::vector<WorkerRouting>> routing;
  for (int layer = 0; layer < plan.num_layers; ++layer) {
    routing.push_back(LayerRouting(input, layer));
  }
  for (int batch : input.batches) {
    StepProjection step = ProjectStep(input, routing, router, batch);
    step.kv_fits =
        batch * projection.kv_bytes_per_sequence <= projection.kv_room_bytes;
    projection.steps.push_back(step);
  }
  return projection;
}

}  // namespace moe

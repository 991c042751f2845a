#include "tools/moe_plan/throughput_projection.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/model/model_config.h"
#include "core/placement/placement_planner.h"
#include "gtest/gtest.h"
#include "tests/support/expect_has_substr.h"
#include "tools/moe_plan/gpu_spec.h"
#include "tools/moe_plan/projection_report.h"

namespace moe {
namespace {

constexpr int64_t kExpertBytes = 1000;
constexpr int kContext = 10;

// hidden 8, intermediate 16, 2 layers, 2 heads and 1 K/V head of 4, vocab
// 32, FP8. Per layer: attention (q, o 8x8; k, v 4x8) 192 FP8 bytes, gate
// [experts, 8] and two norms in BF16; K/V 2 x 4 x 2 = 16 bytes a token.
ModelConfig TinyConfig(int num_experts, int top_k) {
  ModelConfig config;
  config.hidden_size = 8;
  config.intermediate_size = 16;
  config.num_layers = 2;
  config.num_heads = 2;
  config.num_kv_heads = 1;
  config.head_dim = 4;
  config.vocab_size = 32;
  config.num_experts = num_experts;
  config.top_k = top_k;
  config.weight_format = WeightFormat::kFp8;
  return config;
}

// holders[expert]: the same in every layer.
PlacementPlan TinyPlan(int num_layers, int num_workers,
                       const std::vector<std::vector<int>>& holders) {
  PlacementPlan plan;
  plan.model = "tiny";
  plan.num_layers = num_layers;
  plan.num_experts = static_cast<int>(holders.size());
  plan.expert_bytes = kExpertBytes;
  for (int w = 0; w < num_workers; ++w) {
    plan.workers.push_back({absl::StrCat("w", w), 1 << 20, 1.0});
  }
  for (int layer = 0; layer < num_layers; ++layer) {
    plan.holders.insert(plan.holders.end(), holders.begin(), holders.end());
  }
  return plan;
}

// Round numbers, so that each term is easy to follow by hand.
GpuSpec TinyGpu() {
  GpuSpec gpu;
  gpu.name = "tiny";
  gpu.memory_bytes = int64_t{1} << 30;
  gpu.memory_bandwidth = 1e6;
  gpu.fp8_flops = 2e7;
  gpu.bf16_flops = 1e7;
  gpu.link_bandwidth = 1e5;
  return gpu;
}

// Two experts, top-2: every token sends a row to both; w0 (the router's GPU)
// holds expert 0 and w1 expert 1.
ProjectionInput BothExpertsInput() {
  ProjectionInput input;
  input.config = TinyConfig(/*num_experts=*/2, /*top_k=*/2);
  input.plan = TinyPlan(2, 2, {{0}, {1}});
  input.gpus = {TinyGpu(), TinyGpu()};
  input.context = kContext;
  input.batches = {1};
  input.layer_overhead_s = 5e-6;
  input.bandwidth_efficiency = 1;
  input.compute_efficiency = 1;
  input.reserve_bytes = 0;
  return input;
}

StepProjection OnlyStep(const absl::StatusOr<Projection>& projection) {
  if (!projection.ok() || projection->steps.size() != 1) {
    ADD_FAILURE() << "expected one step: " << projection.status();
    return {};
  }
  return projection->steps.front();
}

TEST(ThroughputProjectionTest, WeightAndCacheSizes) {
  const ModelConfig config = TinyConfig(2, 2);
  // Layers: 2 x (192 + (2 + 2) x 8 x 2); embeddings and LM head 2 x 32 x 8 x
  // 2; final norm 8 x 2.
  EXPECT_EQ(RouterWeightBytes(config), 2 * (192 + 64) + 1024 + 16);
  EXPECT_EQ(KvBytesPerToken(config), 2 * 16);
  ModelConfig tied = config;
  tied.tie_word_embeddings = true;
  EXPECT_EQ(RouterWeightBytes(tied), 2 * (192 + 64) + 512 + 16);
}

TEST(ThroughputProjectionTest, EachTermMatchesTheFormulas) {
  const StepProjection step = OnlyStep(ProjectThroughput(BothExpertsInput()));
  // Router, per layer: weights 192 + 64 bytes and K/V 1 x 10 x 16 = 160 bytes
  // at 1e6 B/s = 416 us, against 2 x (192 + 2 x 8) + 4 x 2 x 4 x 10 = 736
  // FLOPs at 1e7 = 73.6 us. LM head: (32 x 8 + 8) x 2 = 528 bytes, 528 us,
  // against 2 x 256 FLOPs, 51.2 us.
  const double router_s = 2 * 416e-6 + 528e-6;
  EXPECT_NEAR(step.router_s, router_s, 1e-12);
  // Experts, per layer: each worker reads its expert, 1000 bytes (1 ms),
  // against one row of 2 x 3 x 8 x 16 = 768 FLOPs at 2e7 (38.4 us).
  const double experts_s = 2 * 1e-3;
  EXPECT_NEAR(step.experts_s, experts_s, 1e-12);
  // Link, per layer: the row to w1 and back, 2 x 8 x 2 bytes at 1e5 B/s.
  const double link_s = 2 * 320e-6;
  EXPECT_NEAR(step.link_s, link_s, 1e-12);
  EXPECT_NEAR(step.overhead_s, 2 * 5e-6, 1e-15);
  const double step_s = router_s + experts_s + link_s + 10e-6;
  EXPECT_NEAR(step.step_s, step_s, 1e-12);
  EXPECT_NEAR(step.tokens_per_s, 1 / step_s, 1e-6);
  EXPECT_NEAR(step.memory_s, router_s + experts_s, 1e-12);
  EXPECT_EQ(step.compute_s, 0);
  EXPECT_EQ(step.bound, StepBound::kMemory);
}

TEST(ThroughputProjectionTest, EfficienciesScaleBandwidthAndCompute) {
  ProjectionInput input = BothExpertsInput();
  input.bandwidth_efficiency = 0.5;
  const StepProjection slower = OnlyStep(ProjectThroughput(input));
  EXPECT_NEAR(slower.experts_s, 2 * 2e-3, 1e-12);
  EXPECT_NEAR(slower.router_s, 2 * (2 * 416e-6 + 528e-6), 1e-12);
  // Fast memory leaves the compute side: per layer 736 FLOPs at 1e7 x 0.5
  // for the router, 768 at 2e7 x 0.5 for each worker.
  input = BothExpertsInput();
  input.gpus[0].memory_bandwidth = input.gpus[1].memory_bandwidth = 1e12;
  input.compute_efficiency = 0.5;
  const StepProjection compute = OnlyStep(ProjectThroughput(input));
  EXPECT_NEAR(compute.experts_s, 2 * 76.8e-6, 1e-12);
  EXPECT_NEAR(compute.router_s, 2 * 147.2e-6 + 102.4e-6, 1e-12);
}

TEST(ThroughputProjectionTest, SlowestWorkerIsExpectedOverRouting) {
  // Four experts, top-1, two on each worker; one token picks each expert with
  // probability 1/4. A worker touches 0, 1 or 2 of its experts with
  // probability 9/16, 6/16, 1/16; the slower of two independent workers
  // reads 1 x (225 - 81) / 256 + 2 x (256 - 225) / 256 = 206 / 256 experts.
  // Fast tensor cores make the compute negligible.
  ProjectionInput input = BothExpertsInput();
  input.config = TinyConfig(4, 1);
  input.plan = TinyPlan(2, 2, {{0}, {0}, {1}, {1}});
  input.gpus[0].fp8_flops = input.gpus[1].fp8_flops = 1e15;
  const StepProjection step = OnlyStep(ProjectThroughput(input));
  EXPECT_NEAR(step.experts_s, 2 * 206.0 / 256 * 1e-3, 1e-12);
  // w1 gets the token's row with probability 1/2.
  EXPECT_NEAR(step.link_s, 2 * 0.5 * 320e-6, 1e-12);
}

TEST(ThroughputProjectionTest, ReplicasAndLoadShareRows) {
  // All load on expert 0, which both workers hold; top-1. Each copy gets the
  // token with probability 1/2, so each worker reads 0 or 1 expert evenly:
  // the slower reads one with probability 3/4.
  ProjectionInput input = BothExpertsInput();
  input.config = TinyConfig(2, 1);
  input.plan = TinyPlan(2, 2, {{0, 1}, {0}});
  input.load = {8, 0, 8, 0};
  input.gpus[0].fp8_flops = input.gpus[1].fp8_flops = 1e15;
  const StepProjection step = OnlyStep(ProjectThroughput(input));
  EXPECT_NEAR(step.experts_s, 2 * 0.75 * 1e-3, 1e-12);
  EXPECT_NEAR(step.link_s, 2 * 0.5 * 320e-6, 1e-12);
}

TEST(ThroughputProjectionTest, BoundFollowsTheLargestPart) {
  ProjectionInput input = BothExpertsInput();
  EXPECT_EQ(OnlyStep(ProjectThroughput(input)).bound, StepBound::kMemory);
  input.gpus[0].memory_bandwidth = input.gpus[1].memory_bandwidth = 1e12;
  input.gpus[0].link_bandwidth = 1e7;
  EXPECT_EQ(OnlyStep(ProjectThroughput(input)).bound, StepBound::kCompute);
  input.gpus[0].link_bandwidth = 1e3;
  EXPECT_EQ(OnlyStep(ProjectThroughput(input)).bound, StepBound::kLink);
  input.layer_overhead_s = 1;
  EXPECT_EQ(OnlyStep(ProjectThroughput(input)).bound, StepBound::kOverhead);
  EXPECT_STREQ(StepBoundName(StepBound::kOverhead), "overhead");
}

TEST(ThroughputProjectionTest, MarksBatchesWhoseCacheDoesNotFit) {
  ProjectionInput input = BothExpertsInput();
  // Router weights 1552, its experts 2 x 1000, reserve 100, and the K/V
  // cache of 3 sequences of 10 tokens, 320 bytes each.
  input.reserve_bytes = 100;
  input.gpus[0].memory_bytes = 1552 + 2000 + 100 + 3 * 320;
  input.batches = {1, 3, 4};
  const absl::StatusOr<Projection> projection = ProjectThroughput(input);
  ASSERT_TRUE(projection.ok()) << projection.status();
  EXPECT_EQ(projection->kv_bytes_per_sequence, 320);
  EXPECT_EQ(projection->kv_room_bytes, 960);
  EXPECT_TRUE(projection->steps[0].kv_fits);
  EXPECT_TRUE(projection->steps[1].kv_fits);
  EXPECT_FALSE(projection->steps[2].kv_fits);
  EXPECT_HAS_SUBSTR(FormatProjection(input, *projection), "room for 3");
}

TEST(ThroughputProjectionTest, SkyworkGainsFromBatchingUntilBound) {
  ModelConfig config;
  config.hidden_size = 4608;
  config.intermediate_size = 12288;
  config.num_layers = 52;
  config.num_heads = config.num_kv_heads = 36;
  config.head_dim = 128;
  config.vocab_size = 65536;
  config.num_experts = 16;
  config.weight_format = WeightFormat::kFp8;
  PlannerInput planner;
  planner.num_layers = 52;
  planner.num_experts = 16;
  planner.expert_bytes = 3 * int64_t{4608} * 12288;
  planner.workers.push_back({"w0", int64_t{2} << 30, 1.0});
  for (int w = 1; w < 8; ++w) {
    planner.workers.push_back({absl::StrCat("w", w), int64_t{22} << 30, 1.0});
  }
  const absl::StatusOr<PlacementPlan> plan = PlanPlacement(planner);
  ASSERT_TRUE(plan.ok()) << plan.status();
  const absl::StatusOr<GpuSpec> gpu = ParseGpuSpec("rtx4090");
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  ProjectionInput input;
  input.config = config;
  input.plan = *plan;
  input.gpus.assign(8, *gpu);
  input.batches = {1, 8, 32, 64, 128, 256, 512};
  const absl::StatusOr<Projection> projection = ProjectThroughput(input);
  ASSERT_TRUE(projection.ok()) << projection.status();
  const std::vector<StepProjection>& steps = projection->steps;
  for (size_t i = 1; i < steps.size(); ++i) {
    EXPECT_GT(steps[i].tokens_per_s, steps[i - 1].tokens_per_s)
        << steps[i].batch;
    EXPECT_GT(steps[i].step_s, steps[i - 1].step_s) << steps[i].batch;
  }
  // Reading the K/V cache grows with the batch: doubling it at the end gains
  // little.
  EXPECT_LT(steps[6].tokens_per_s, 1.1 * steps[5].tokens_per_s);
  EXPECT_EQ(steps[6].bound, StepBound::kMemory);
  EXPECT_TRUE(steps[1].kv_fits);
  EXPECT_FALSE(steps[6].kv_fits);
}

TEST(ThroughputProjectionTest, RejectsBadInputsNamingThem) {
  ProjectionInput input = BothExpertsInput();
  input.gpus[1].memory_bandwidth = 0;
  absl::Status status = ProjectThroughput(input).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_HAS_SUBSTR(status.message(), "bandwidth must be a positive number");

  input = BothExpertsInput();
  input.router_worker = "w9";
  status = ProjectThroughput(input).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_HAS_SUBSTR(status.message(),
                    "--router-worker \"w9\" is not a worker of the plan");

  input = BothExpertsInput();
  input.context = 0;
  EXPECT_HAS_SUBSTR(ProjectThroughput(input).status().message(), "--context");
  input = BothExpertsInput();
  input.compute_efficiency = 1.5;
  EXPECT_HAS_SUBSTR(ProjectThroughput(input).status().message(),
                    "--compute-efficiency");
  input = BothExpertsInput();
  input.batches = {0};
  EXPECT_HAS_SUBSTR(ProjectThroughput(input).status().message(), "--batches");
  input = BothExpertsInput();
  input.gpus.pop_back();
  EXPECT_HAS_SUBSTR(ProjectThroughput(input).status().message(),
                    "one GPU per worker");

  // w1's 1000 bytes of experts and a reserve of 1 GiB exceed its 1 GiB.
  input = BothExpertsInput();
  input.router_worker = "w1";
  input.reserve_bytes = int64_t{1} << 30;
  input.gpus[0].memory_bytes = int64_t{2} << 30;
  status = ProjectThroughput(input).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_HAS_SUBSTR(status.message(), "worker w1: its GPU (tiny, 1.00 GiB)");
  EXPECT_HAS_SUBSTR(status.message(), "the router's weights");
}

TEST(GpuSpecTest, PresetsAndOverrides) {
  absl::StatusOr<GpuSpec> gpu = ParseGpuSpec("rtx4090");
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  EXPECT_EQ(gpu->memory_bytes, int64_t{24564} << 20);
  EXPECT_EQ(gpu->memory_bandwidth, 1008e9);
  EXPECT_EQ(gpu->link_bandwidth, 25e9);
  gpu = ParseGpuSpec("H200, link=50GB/s, fp8=1000, memory=100GiB");
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  EXPECT_EQ(gpu->name, "h200");
  EXPECT_EQ(gpu->memory_bandwidth, 4800e9);
  EXPECT_EQ(gpu->link_bandwidth, 50e9);
  EXPECT_EQ(gpu->fp8_flops, 1000e12);
  EXPECT_EQ(gpu->memory_bytes, int64_t{100} << 30);
}

TEST(GpuSpecTest, RejectsUnknownPresetsKeysAndZeros) {
  const std::pair<const char*, const char*> cases[] = {
      {"a100", "--gpu: unknown GPU \"a100\""},
      {"", "--gpu: unknown GPU \"\""},
      {"h100,speed=2", "unknown key \"speed\""},
      {"h100,link=fast", "--gpu item \"link=fast\""},
      {"rtx4090,bandwidth=0", "--gpu rtx4090: bandwidth must be a positive"},
      {"rtx4090,bf16=-1", "bf16 must be a positive"},
  };
  for (const auto& [text, message] : cases) {
    const absl::Status status = ParseGpuSpec(text).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_HAS_SUBSTR(status.message(), message);
  }
}

TEST(ProjectionReportTest, ParsesBatchesAndPrintsTheTable) {
  absl::StatusOr<std::vector<int>> batches = ParseBatchSizes("1, 8,64");
  ASSERT_TRUE(batches.ok()) << batches.status();
  EXPECT_EQ(*batches, (std::vector<int>{1, 8, 64}));
  EXPECT_HAS_SUBSTR(ParseBatchSizes("1,many").status().message(),
                    "--batches item \"many\"");

  ProjectionInput input = BothExpertsInput();
  const absl::StatusOr<Projection> projection = ProjectThroughput(input);
  ASSERT_TRUE(projection.ok()) << projection.status();
  const std::string report = FormatProjection(input, *projection);
  EXPECT_HAS_SUBSTR(report, "tokens/s");
  EXPECT_HAS_SUBSTR(report, "router on w0");
  // Step 4.01 ms: 1.36 router, 2.00 experts, 0.64 link, 0.01 overhead.
  EXPECT_HAS_SUBSTR(report, "     1      4.01      1.36       2.00");
}

}  // namespace
}  // namespace moe

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/model/model_config.h"
#include "core/placement/placement_plan.h"
#include "core/placement/placement_planner.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/expect_has_substr.h"
#include "tools/moe_plan/placement_tool.h"

namespace moe {
namespace {

constexpr int64_t kExpertBytes = 1000;

// Skywork-MoE's shape (52 layers x 16 experts) on `workers`.
PlannerInput SkyworkShaped(std::vector<WorkerSpec> workers) {
  PlannerInput input;
  input.model = "test";
  input.num_layers = 52;
  input.num_experts = 16;
  input.expert_bytes = kExpertBytes;
  input.workers = std::move(workers);
  return input;
}

std::vector<WorkerSpec> Workers(int count, int64_t memory_bytes) {
  std::vector<WorkerSpec> workers;
  for (int w = 0; w < count; ++w) {
    workers.push_back({absl::StrCat("w", w), memory_bytes, 1.0});
  }
  return workers;
}

// Routed tokens falling off steeply with the expert index, shifted by layer
// so that each layer has a different hottest expert.
std::vector<double> SkewedLoad(int num_layers, int num_experts) {
  std::vector<double> load;
  for (int layer = 0; layer < num_layers; ++layer) {
    for (int expert = 0; expert < num_experts; ++expert) {
      const int rank = (expert + layer) % num_experts;
      load.push_back(1000.0 / ((rank + 1) * (rank + 1)));
    }
  }
  return load;
}

double MaxTime(const PlacementPlan& plan, const std::vector<double>& load,
               int layer) {
  const std::vector<double> times = PredictedLayerTimes(plan, load, layer);
  return *std::max_element(times.begin(), times.end());
}

// Sum over the layers of the slowest worker's time.
double TotalMaxTime(const PlacementPlan& plan,
                    const std::vector<double>& load) {
  double total = 0;
  for (int layer = 0; layer < plan.num_layers; ++layer) {
    total += MaxTime(plan, load, layer);
  }
  return total;
}

void ExpectWithinMemory(const PlacementPlan& plan) {
  for (int w = 0; w < static_cast<int>(plan.workers.size()); ++w) {
    EXPECT_LE(plan.ExpertCount(w) * plan.expert_bytes,
              plan.workers[w].memory_bytes)
        << plan.workers[w].id;
  }
}

TEST(PlacementTest, RespectsEveryWorkersMemory) {
  std::vector<WorkerSpec> workers = Workers(8, 151 * kExpertBytes);
  workers[2].memory_bytes = 90 * kExpertBytes + 999;
  workers[5].memory_bytes = 200 * kExpertBytes;
  workers[6].speed = 1.5;
  PlannerInput input = SkyworkShaped(workers);
  input.load = SkewedLoad(input.num_layers, input.num_experts);
  input.replica_budget = 400;
  absl::StatusOr<PlacementPlan> plan = PlanPlacement(input);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(ValidatePlan(*plan).ok()) << ValidatePlan(*plan);
  ExpectWithinMemory(*plan);
  EXPECT_EQ(plan->model, "test");
  EXPECT_EQ(plan->num_layers, 52);
  EXPECT_EQ(plan->num_experts, 16);
}

TEST(PlacementTest, ExactFitPlacesEveryExpert) {
  // 832 experts in exactly 832 slots, spread unevenly over four workers.
  const std::vector<int64_t> slots = {100, 180, 250, 302};
  std::vector<WorkerSpec> workers = Workers(4, 0);
  for (int w = 0; w < 4; ++w) {
    workers[w].memory_bytes = slots[w] * kExpertBytes + 999;
  }
  absl::StatusOr<PlacementPlan> plan = PlanPlacement(SkyworkShaped(workers));
  ASSERT_TRUE(plan.ok()) << plan.status();
  for (int w = 0; w < 4; ++w) EXPECT_EQ(plan->ExpertCount(w), slots[w]);
}

TEST(PlacementTest, SmallerBudgetGetsFewerExperts) {
  // Eight workers of 151 experts' memory but one with about half.
  std::vector<WorkerSpec> workers = Workers(8, 151 * kExpertBytes);
  workers[7].memory_bytes = 75 * kExpertBytes;
  absl::StatusOr<PlacementPlan> plan = PlanPlacement(SkyworkShaped(workers));
  ASSERT_TRUE(plan.ok()) << plan.status();
  ExpectWithinMemory(*plan);
  const int64_t even_share = 52 * 16 / 8;
  EXPECT_LT(plan->ExpertCount(7), even_share);
  for (int w = 0; w < 7; ++w) {
    EXPECT_GT(plan->ExpertCount(w), even_share) << w;
  }
  // Every layer is as balanced as the small worker's memory allows: 16
  // experts of equal load over 8 workers need at most 3 on one.
  for (int layer = 0; layer < 52; ++layer) {
    EXPECT_LE(MaxTime(*plan, {}, layer), 3.0) << layer;
  }
}

TEST(PlacementTest, FasterWorkersTakeMoreLoad) {
  std::vector<WorkerSpec> workers = Workers(4, 1000 * kExpertBytes);
  workers[0].speed = 2.0;
  absl::StatusOr<PlacementPlan> plan = PlanPlacement(SkyworkShaped(workers));
  ASSERT_TRUE(plan.ok()) << plan.status();
  for (int w = 1; w < 4; ++w) {
    EXPECT_GT(plan->ExpertCount(0), plan->ExpertCount(w) * 3 / 2) << w;
  }
  // Speeds 2+1+1+1: an even split of 16 experts takes 16 / 5 = 3.2; whole
  // experts get within one expert of it.
  for (int layer = 0; layer < 52; ++layer) {
    EXPECT_LE(MaxTime(*plan, {}, layer), 4.0) << layer;
  }
}

TEST(PlacementTest, ReplicasGoToHotExpertsAndCutTheSlowestTime) {
  PlannerInput input = SkyworkShaped(Workers(8, 300 * kExpertBytes));
  input.load = SkewedLoad(input.num_layers, input.num_experts);
  absl::StatusOr<PlacementPlan> single = PlanPlacement(input);
  ASSERT_TRUE(single.ok()) << single.status();
  input.replica_budget = 52 * 4;
  absl::StatusOr<PlacementPlan> replicated = PlanPlacement(input);
  ASSERT_TRUE(replicated.ok()) << replicated.status();
  ExpectWithinMemory(*replicated);

  int64_t copies = 0;
  for (const std::vector<int>& holders : replicated->holders) {
    copies += holders.size();
  }
  EXPECT_GT(copies, 52 * 16);
  EXPECT_LE(copies, 52 * 16 + input.replica_budget);
  for (int layer = 0; layer < 52; ++layer) {
    // The hottest expert (rank 0) is copied; the coldest half never is.
    for (int expert = 0; expert < 16; ++expert) {
      const int rank = (expert + layer) % 16;
      const size_t holders = replicated->Holders(layer, expert).size();
      if (rank == 0) {
        EXPECT_GT(holders, 1) << layer;
      } else if (rank >= 8) {
        EXPECT_EQ(holders, 1) << layer << " " << expert;
      }
    }
    EXPECT_LT(MaxTime(*replicated, input.load, layer),
              MaxTime(*single, input.load, layer))
        << layer;
  }
  EXPECT_LT(TotalMaxTime(*replicated, input.load),
            0.6 * TotalMaxTime(*single, input.load));
}

TEST(PlacementTest, ReplicaMayRearrangeItsLayer) {
  // The hot expert on the fast worker takes 12 / 1.5 = 8. Half of it added
  // to either busy worker makes that one 5 + 6 = 11; placing the layer again
  // with two halves gets the slowest to 7.33.
  PlannerInput input;
  input.num_layers = 1;
  input.num_experts = 3;
  input.expert_bytes = kExpertBytes;
  input.workers = Workers(3, 3 * kExpertBytes);
  input.workers[0].speed = 1.5;
  input.load = {12, 5, 5};
  absl::StatusOr<PlacementPlan> single = PlanPlacement(input);
  ASSERT_TRUE(single.ok()) << single.status();
  EXPECT_DOUBLE_EQ(MaxTime(*single, input.load, 0), 8.0);
  input.replica_budget = 1;
  absl::StatusOr<PlacementPlan> replicated = PlanPlacement(input);
  ASSERT_TRUE(replicated.ok()) << replicated.status();
  EXPECT_EQ(replicated->Holders(0, 0).size(), 2);
  EXPECT_NEAR(MaxTime(*replicated, input.load, 0), 11 / 1.5, 1e-9);
}

TEST(PlacementTest, ReplicasStopWhenMemoryIsFull) {
  // One spare slot in all: at most one replica whatever the budget.
  std::vector<WorkerSpec> workers = Workers(2, 416 * kExpertBytes);
  workers[1].memory_bytes = 417 * kExpertBytes;
  PlannerInput input = SkyworkShaped(workers);
  input.load = SkewedLoad(input.num_layers, input.num_experts);
  input.replica_budget = 1000;
  absl::StatusOr<PlacementPlan> plan = PlanPlacement(input);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ExpectWithinMemory(*plan);
  EXPECT_LE(plan->ExpertCount(0) + plan->ExpertCount(1), 52 * 16 + 1);
}

TEST(PlacementTest, IsDeterministic) {
  PlannerInput input = SkyworkShaped(Workers(6, 200 * kExpertBytes));
  input.load = SkewedLoad(input.num_layers, input.num_experts);
  input.replica_budget = 50;
  absl::StatusOr<PlacementPlan> a = PlanPlacement(input);
  absl::StatusOr<PlacementPlan> b = PlanPlacement(input);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(PlanToJson(*a), PlanToJson(*b));
}

TEST(PlacementTest, TooLittleMemoryStatesTheMissingBytes) {
  // 832 experts, 8 x 75 = 600 slots: 232 experts' bytes missing.
  absl::StatusOr<PlacementPlan> plan =
      PlanPlacement(SkyworkShaped(Workers(8, 75 * kExpertBytes + 500)));
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_HAS_SUBSTR(plan.status().message(),
                    "experts need 832000 bytes (832 x 1000)");
  EXPECT_HAS_SUBSTR(plan.status().message(), "232000 bytes missing");
}

// The fewest workers that hold (layer, expert), over all of them.
size_t FewestHolders(const PlacementPlan& plan) {
  size_t fewest = plan.workers.size();
  for (const std::vector<int>& holders : plan.holders) {
    fewest = std::min(fewest, holders.size());
  }
  return fewest;
}

TEST(PlacementTest, CopiesPutEveryExpertOnDistinctWorkers) {
  // 2 x 832 copies in 7 x 230 + 115 slots (one worker half as big), one
  // worker faster.
  std::vector<WorkerSpec> workers = Workers(8, 230 * kExpertBytes);
  workers[3].memory_bytes = 115 * kExpertBytes;
  workers[5].speed = 2.0;
  PlannerInput input = SkyworkShaped(workers);
  input.copies = 2;
  input.load = SkewedLoad(input.num_layers, input.num_experts);
  input.replica_budget = 50;
  absl::StatusOr<PlacementPlan> plan = PlanPlacement(input);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(ValidatePlan(*plan).ok()) << ValidatePlan(*plan);
  ExpectWithinMemory(*plan);
  EXPECT_EQ(FewestHolders(*plan), 2u);  // ValidatePlan: distinct workers
  int64_t held = 0;
  for (int w = 0; w < 8; ++w) held += plan->ExpertCount(w);
  EXPECT_GT(held, 2 * 832);  // and the replicas on top

  // Every worker holds all: copies as many as the workers.
  input = SkyworkShaped(Workers(3, 832 * kExpertBytes));
  input.copies = 3;
  plan = PlanPlacement(input);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(FewestHolders(*plan), 3u);
}

// Planned again on the same workers and load, from its own placement, a
// plan stays as it is.
TEST(PlacementTest, ReplanningTheSameInputMovesNothing) {
  PlannerInput input = SkyworkShaped(Workers(4, 260 * kExpertBytes));
  input.load = SkewedLoad(input.num_layers, input.num_experts);
  input.replica_budget = 20;
  const absl::StatusOr<PlacementPlan> first = PlanPlacement(input);
  ASSERT_TRUE(first.ok()) << first.status();
  input.current_holders = CurrentHolders(*first, input.workers);
  const absl::StatusOr<PlacementPlan> again = PlanPlacement(input);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(CopiesToLoad(*first, *again), 0);
  EXPECT_EQ(again->holders, first->holders);
}

// A plan made on `input`, then plans for `workers` from scratch and from
// the first one's placement; the last is checked to be valid, within
// memory, and within kKeepSlack of the plan from scratch on `load`
// (uniform when empty).
struct Replanned {
  PlacementPlan before, scratch, kept;
};
Replanned Replan(PlannerInput input, std::vector<WorkerSpec> workers) {
  Replanned plans;
  absl::StatusOr<PlacementPlan> plan = PlanPlacement(input);
  EXPECT_TRUE(plan.ok()) << plan.status();
  if (!plan.ok()) return plans;
  plans.before = *plan;
  input.workers = std::move(workers);
  input.version = 2;
  plan = PlanPlacement(input);
  EXPECT_TRUE(plan.ok()) << plan.status();
  if (!plan.ok()) return plans;
  plans.scratch = *plan;
  input.current_holders = CurrentHolders(plans.before, input.workers);
  plan = PlanPlacement(input);
  EXPECT_TRUE(plan.ok()) << plan.status();
  if (!plan.ok()) return plans;
  plans.kept = *plan;
  EXPECT_TRUE(ValidatePlan(plans.kept).ok());
  ExpectWithinMemory(plans.kept);
  const std::vector<double> load =
      input.load.empty() ? std::vector<double>(832, 1.0) : input.load;
  EXPECT_LE(TotalMaxTime(plans.kept, load),
            (1 + kKeepSlack) * TotalMaxTime(plans.scratch, load) + 1e-9);
  return plans;
}

// Four workers join four: planned from the current placement, the layers'
// slowest times stay within kKeepSlack of a plan from scratch while fewer
// experts move. With a uniform load the new workers take half the experts
// and little else moves; with a skewed one the hottest expert bounds every
// layer's time whatever the plan, so most experts stay where they are.
TEST(PlacementTest, JoiningWorkersGetExpertsWithFewMoves) {
  for (const bool skewed : {false, true}) {
    SCOPED_TRACE(skewed ? "skewed" : "uniform");
    PlannerInput input = SkyworkShaped(Workers(4, 260 * kExpertBytes));
    if (skewed) input.load = SkewedLoad(input.num_layers, input.num_experts);
    const Replanned plans = Replan(input, Workers(8, 260 * kExpertBytes));
    const int64_t moves = CopiesToLoad(plans.before, plans.kept);
    if (skewed) {
      EXPECT_LE(moves, CopiesToLoad(plans.before, plans.scratch) / 2);
    } else {
      // The least a move can load: what the new workers hold.
      int64_t joined = 0;
      for (int w = 4; w < 8; ++w) joined += plans.kept.ExpertCount(w);
      EXPECT_GE(joined, 832 / 2 - 52);
      EXPECT_LE(moves, joined);
      const std::vector<double> load(832, 1.0);
      EXPECT_LT(TotalMaxTime(plans.kept, load),
                TotalMaxTime(plans.before, load));
    }
  }
}

// A worker of five leaves: planned from the current placement, mostly its
// experts move, while the layers' slowest times stay within kKeepSlack of a
// plan from scratch.
TEST(PlacementTest, ALeavingWorkersExpertsMoveAndLittleElse) {
  for (const bool skewed : {false, true}) {
    SCOPED_TRACE(skewed ? "skewed" : "uniform");
    PlannerInput input = SkyworkShaped(Workers(5, 260 * kExpertBytes));
    if (skewed) input.load = SkewedLoad(input.num_layers, input.num_experts);
    std::vector<WorkerSpec> staying = input.workers;
    staying.pop_back();
    const Replanned plans = Replan(input, staying);
    const int64_t leaving = plans.before.ExpertCount(4);
    EXPECT_LE(CopiesToLoad(plans.before, plans.kept), leaving * 3 / 2)
        << "w4 held " << leaving;
  }
}

TEST(PlacementTest, CopiesThatDoNotFitStateTheMissingBytes) {
  // 2 x 832 copies, 8 x 150 = 1200 slots: 464 copies' bytes missing.
  PlannerInput input = SkyworkShaped(Workers(8, 150 * kExpertBytes));
  input.copies = 2;
  absl::StatusOr<PlacementPlan> plan = PlanPlacement(input);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_HAS_SUBSTR(plan.status().message(),
                    "2 copies of every expert need 1664000 bytes");
  EXPECT_HAS_SUBSTR(plan.status().message(), "464000 bytes missing");
  // More copies than workers can never be placed.
  input = SkyworkShaped(Workers(2, 10000 * kExpertBytes));
  input.copies = 3;
  plan = PlanPlacement(input);
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_HAS_SUBSTR(plan.status().message(), "3 copies of every expert");
}

TEST(PlacementTest, WorkerBelowOneExpertIsNamed) {
  std::vector<WorkerSpec> workers = Workers(8, 1000 * kExpertBytes);
  workers[3].id = "tiny";
  workers[3].memory_bytes = 999;
  absl::StatusOr<PlacementPlan> plan = PlanPlacement(SkyworkShaped(workers));
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_HAS_SUBSTR(plan.status().message(),
                    "worker tiny has 999 bytes, less than one expert (1000 "
                    "bytes)");
}

TEST(PlacementTest, RejectsBadInput) {
  PlannerInput input = SkyworkShaped(Workers(8, 1000 * kExpertBytes));
  input.load = {1.0, 2.0};
  EXPECT_HAS_SUBSTR(PlanPlacement(input).status().message(),
                    "load has 2 values, expected layers x experts = 52 x 16");
  input.load = SkewedLoad(52, 16);
  input.load[16 * 3 + 5] = -1;
  EXPECT_HAS_SUBSTR(PlanPlacement(input).status().message(),
                    "load of layer 3 expert 5 is -1");
  input.load.clear();
  input.workers[4].id = "w1";
  EXPECT_HAS_SUBSTR(PlanPlacement(input).status().message(),
                    "worker id \"w1\" appears twice");
  input.workers[4].id = "w4";
  input.workers[2].speed = 0;
  EXPECT_HAS_SUBSTR(PlanPlacement(input).status().message(),
                    "worker w2: speed must be a positive number");
}

PlacementPlan SmallPlan() {
  PlannerInput input;
  input.model = "small";
  input.version = 3;
  input.num_layers = 2;
  input.num_experts = 4;
  input.expert_bytes = kExpertBytes;
  input.workers = Workers(3, 5 * kExpertBytes);
  input.workers[2].speed = 1.5;
  input.load = SkewedLoad(2, 4);
  input.replica_budget = 2;
  absl::StatusOr<PlacementPlan> plan = PlanPlacement(input);
  EXPECT_TRUE(plan.ok()) << plan.status();
  return *plan;
}

TEST(PlacementTest, JsonRoundTrip) {
  const PlacementPlan plan = SmallPlan();
  const nlohmann::json json = PlanToJson(plan);
  EXPECT_EQ(json["format"], "moe-placement-plan");
  EXPECT_EQ(json["experts"].size(), 8);
  absl::StatusOr<PlacementPlan> read = PlanFromJson(json, "plan.json");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->version, 3);
  EXPECT_EQ(read->model, "small");
  EXPECT_EQ(read->num_layers, 2);
  EXPECT_EQ(read->num_experts, 4);
  EXPECT_EQ(read->expert_bytes, kExpertBytes);
  ASSERT_EQ(read->workers.size(), 3);
  EXPECT_EQ(read->workers[2].id, "w2");
  EXPECT_EQ(read->workers[2].memory_bytes, 5 * kExpertBytes);
  EXPECT_EQ(read->workers[2].speed, 1.5);
  EXPECT_EQ(read->holders, plan.holders);
  EXPECT_EQ(read->WorkerIndex("w1"), 1);
  EXPECT_EQ(read->WorkerIndex("w9"), -1);

  const std::string path = testing::TempDir() + "/placement_test_plan.json";
  ASSERT_TRUE(WritePlan(plan, path).ok());
  absl::StatusOr<PlacementPlan> from_file = ReadPlan(path);
  ASSERT_TRUE(from_file.ok()) << from_file.status();
  EXPECT_EQ(PlanToJson(*from_file), json);
}

TEST(PlacementTest, ReadsExpertsInAnyOrder) {
  nlohmann::json json = PlanToJson(SmallPlan());
  std::reverse(json["experts"].begin(), json["experts"].end());
  absl::StatusOr<PlacementPlan> read = PlanFromJson(json, "plan.json");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->holders, SmallPlan().holders);
}

std::string JsonError(const nlohmann::json& json) {
  return std::string(PlanFromJson(json, "plan.json").status().message());
}

TEST(PlacementTest, PlanFromJsonNamesTheProblem) {
  const nlohmann::json good = PlanToJson(SmallPlan());
  nlohmann::json json = good;
  json["experts"][5]["workers"] = {"w0", "w9"};
  EXPECT_HAS_SUBSTR(JsonError(json),
                    "plan.json: experts[5]: unknown worker "
                    "\"w9\"");

  json = good;
  json["experts"].erase(6);
  EXPECT_HAS_SUBSTR(JsonError(json),
                    "plan.json: layer 1 expert 2 is missing from \"experts\"");

  json = good;
  json["experts"][6] = json["experts"][1];
  EXPECT_HAS_SUBSTR(JsonError(json),
                    "plan.json: experts[6]: layer 0 expert 1 is listed twice");

  json = good;
  json["experts"][2]["workers"] = {"w1", "w1"};
  EXPECT_HAS_SUBSTR(JsonError(json),
                    "plan.json: layer 0 expert 2 lists worker w1 twice");

  json = good;
  json["experts"][3]["workers"] = nlohmann::json::array();
  EXPECT_HAS_SUBSTR(JsonError(json),
                    "plan.json: layer 0 expert 3 has no "
                    "worker");

  json = good;
  json["workers"][2]["id"] = "w0";
  EXPECT_HAS_SUBSTR(JsonError(json),
                    "plan.json: workers[2]: worker id \"w0\" appears twice");

  json = good;
  json["experts"][0]["layer"] = 2;
  EXPECT_HAS_SUBSTR(JsonError(json),
                    "plan.json: experts[0]: \"layer\" must be an integer in "
                    "[0, 1], got 2");

  json = good;
  json["workers"][1].erase("memory_bytes");
  EXPECT_HAS_SUBSTR(JsonError(json),
                    "plan.json: workers[1]: missing \"memory_bytes\"");

  json = good;
  json["format"] = "something-else";
  EXPECT_HAS_SUBSTR(JsonError(json),
                    "\"format\" must be "
                    "\"moe-placement-plan\"");
  EXPECT_HAS_SUBSTR(
      PlanFromJson(nlohmann::json::array(), "plan.json").status().message(),
      "plan.json: not a JSON object");
}

TEST(PlacementTest, ValidatePlanNamesTheProblem) {
  const PlacementPlan good = SmallPlan();
  EXPECT_TRUE(ValidatePlan(good).ok());

  PlacementPlan plan = good;
  plan.holders[5] = {0, 7};
  EXPECT_HAS_SUBSTR(ValidatePlan(plan).message(),
                    "layer 1 expert 1: worker index 7 out of range (3 "
                    "workers)");

  plan = good;
  plan.holders[4] = {};
  EXPECT_HAS_SUBSTR(ValidatePlan(plan).message(),
                    "layer 1 expert 0 has no "
                    "worker");

  plan = good;
  plan.holders[4] = {2, 2};
  EXPECT_HAS_SUBSTR(ValidatePlan(plan).message(),
                    "layer 1 expert 0 lists worker w2 twice");

  plan = good;
  plan.workers[1].id = "w2";
  EXPECT_HAS_SUBSTR(ValidatePlan(plan).message(),
                    "worker id \"w2\" appears twice");

  plan = good;
  plan.holders.pop_back();
  EXPECT_HAS_SUBSTR(ValidatePlan(plan).message(),
                    "holders has 7 entries, expected 2 x 4 = 8");
}

TEST(PlacementTest, PredictedLayerTimesSplitLoadOverReplicas) {
  PlacementPlan plan;
  plan.num_layers = 1;
  plan.num_experts = 2;
  plan.workers = {{"a", 0, 1.0}, {"b", 0, 2.0}};
  plan.holders = {{0, 1}, {1}};
  const std::vector<double> times = PredictedLayerTimes(plan, {6.0, 4.0}, 0);
  ASSERT_EQ(times.size(), 2);
  EXPECT_DOUBLE_EQ(times[0], 3.0);              // half of expert 0
  EXPECT_DOUBLE_EQ(times[1], (3.0 + 4.0) / 2);  // the other half + expert 1
  EXPECT_EQ(PredictedLayerTimes(plan, {}, 0), (std::vector<double>{0.5, 0.75}));
}

TEST(PlacementToolTest, ParsesWorkerSpecs) {
  absl::StatusOr<std::vector<WorkerSpec>> workers =
      ParseWorkerSpecs("w0=24GiB, w1=1.5GB@2,w7=12GiB@1.5,big=1TiB,b=4096");
  ASSERT_TRUE(workers.ok()) << workers.status();
  ASSERT_EQ(workers->size(), 5);
  EXPECT_EQ((*workers)[0].id, "w0");
  EXPECT_EQ((*workers)[0].memory_bytes, int64_t{24} << 30);
  EXPECT_EQ((*workers)[0].speed, 1.0);
  EXPECT_EQ((*workers)[1].memory_bytes, 1500000000);
  EXPECT_EQ((*workers)[1].speed, 2.0);
  EXPECT_EQ((*workers)[2].memory_bytes, int64_t{12} << 30);
  EXPECT_EQ((*workers)[2].speed, 1.5);
  EXPECT_EQ((*workers)[3].memory_bytes, int64_t{1} << 40);
  EXPECT_EQ((*workers)[4].memory_bytes, 4096);
}

TEST(PlacementToolTest, WorkerSpecErrorsNameTheItem) {
  EXPECT_HAS_SUBSTR(ParseWorkerSpecs("w0=24GiB,w1").status().message(),
                    "--workers item \"w1\": expected ID=MEMORY[@SPEED]");
  EXPECT_HAS_SUBSTR(ParseWorkerSpecs("w0=24XB").status().message(),
                    "--workers item \"w0=24XB\": unknown unit \"XB\"");
  EXPECT_HAS_SUBSTR(ParseWorkerSpecs("w0=lots").status().message(),
                    "--workers item \"w0=lots\": \"lots\" is not a size");
  EXPECT_HAS_SUBSTR(ParseWorkerSpecs("w0=24GiB@fast").status().message(),
                    "speed \"fast\" is not a positive number");
  EXPECT_HAS_SUBSTR(ParseWorkerSpecs("w0=24GiB@0").status().message(),
                    "speed \"0\" is not a positive number");
  EXPECT_HAS_SUBSTR(ParseWorkerSpecs("w0=1GB,w0=2GB").status().message(),
                    "worker w0 is listed twice");
  EXPECT_HAS_SUBSTR(ParseWorkerSpecs("w0=1.5").status().message(),
                    "not a whole number of bytes");
  EXPECT_HAS_SUBSTR(ParseWorkerSpecs(" , ").status().message(),
                    "--workers lists no workers");
}

TEST(PlacementToolTest, ExpertWeightBytes) {
  ModelConfig config;
  config.hidden_size = 4608;
  config.intermediate_size = 12288;
  EXPECT_EQ(ExpertWeightBytes(config), 2 * 3 * 4608 * int64_t{12288});
  config.weight_format = WeightFormat::kFp8;
  EXPECT_EQ(ExpertWeightBytes(config),
            3 * 4608 * int64_t{12288} + (2 * 12288 + 4608) * 4);
}

}  // namespace
}  // namespace moe

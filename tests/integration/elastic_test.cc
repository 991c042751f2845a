// The expert tier changing while the router serves: plans applied between
// engine steps (the logits stay those of the embedded engine), workers that
// join and are given experts by a rebalance, workers drained until they
// hold nothing, a worker restarted from an older plan given its share of
// the plan in use, and changes the router refuses, naming why. Real
// processes on 127.0.0.1.
#include <signal.h>
#include <sys/wait.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "engine/cpu_model_runner.h"
#include "gtest/gtest.h"
#include "moe/v1/router_admin.grpc.pb.h"
#include "router_service/placement_change.h"
#include "rpc/grpc_status.h"
#include "tests/support/expect_has_substr.h"
#include "tests/support/test_cluster.h"

namespace moe::testing {
namespace {

std::vector<std::pair<int, int>> Held(const v1::WorkerDescription& d) {
  std::vector<std::pair<int, int>> held;
  for (const v1::ExpertId& id : d.experts()) {
    held.emplace_back(id.layer(), id.expert());
  }
  return held;
}

v1::WorkerDescription Describe(const std::string& address) {
  auto stub = v1::ExpertWorker::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  v1::WorkerDescription description;
  const grpc::Status status =
      stub->Describe(&context, v1::DescribeRequest(), &description);
  EXPECT_TRUE(status.ok()) << address << ": " << status.error_message();
  return description;
}

// The logits of `tokens` from an empty cache.
std::vector<float> Logits(ModelRunner& runner,
                          const std::vector<int32_t>& tokens) {
  SequenceKvCache cache = runner.NewCache();
  auto logits = runner.Forward(tokens, cache, LogitsFor::kAllTokens);
  EXPECT_TRUE(logits.ok()) << logits.status();
  return logits.ok() ? *logits : std::vector<float>();
}

double MaxAbsDifference(const std::vector<float>& a,
                        const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double max = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    max = std::max(max, std::abs(double{a[i]} - b[i]));
  }
  return max;
}

class ElasticTest : public ::testing::Test {
 protected:
  static constexpr int kStreams = 16;
  static constexpr int kTokens = 40;

  // Every expert on two of three workers with room for 12 each.
  void SetUp() override {
    StartCluster(spec_, PlanWithSlots(spec_, {12, 12, 12}, /*copies=*/2),
                 {"--worker-timeout-ms", "2000", "--max-batch", "16"},
                 cluster_);
    reference_ = std::make_unique<EngineReference>(cluster_.model_dir);
    stub_ = RouterStub(cluster_);
    admin_ = v1::RouterAdmin::NewStub(grpc::CreateChannel(
        cluster_.router_address, grpc::InsecureChannelCredentials()));
    for (int r = 0; r < kStreams; ++r) {
      v1::RouterGenerateRequest request =
          GreedyRequest(Prompt(4 + r, r), kTokens);
      request.set_ignore_eos(true);
      requests_.push_back(request);
    }
  }

  int64_t ExpertBytes() const { return cluster_.plan.expert_bytes; }

  // A worker started without a plan, with room for `slots` experts.
  std::string StartJoiningWorker(const std::string& id, int slots) {
    joined_.push_back(StartEmptyWorker(cluster_, id, slots * ExpertBytes()));
    absl::StatusOr<std::string> address =
        joined_.back()->AwaitAddress(kStartTimeout);
    EXPECT_TRUE(address.ok()) << address.status();
    return address.ok() ? *address : "";
  }

  grpc::Status AddWorker(const std::string& id, const std::string& address,
                         v1::WorkerDescription* reply) {
    v1::AddWorkerRequest request;
    request.set_worker_id(id);
    request.set_address(address);
    grpc::ClientContext context;
    return admin_->AddWorker(&context, request, reply);
  }

  // The kStreams streams with `change` (if any) made once the first tokens
  // came; all must end with the embedded engine's tokens.
  void RunStreamsWhile(const std::function<void()>& change) {
    std::thread changer;
    const std::vector<StreamResult> results =
        RunConcurrently(*stub_, requests_, [&] {
          if (change) changer = std::thread(change);
        });
    if (changer.joinable()) changer.join();
    reference_->ExpectItsTokens(results, requests_);
  }

  const TestModelSpec spec_{.format = WeightFormat::kFp8, .layers = 2};
  Cluster cluster_;
  std::vector<std::unique_ptr<ChildProcess>> joined_;
  std::unique_ptr<EngineReference> reference_;
  std::unique_ptr<v1::Router::Stub> stub_;
  std::unique_ptr<v1::RouterAdmin::Stub> admin_;
  std::vector<v1::RouterGenerateRequest> requests_;
};

// A plan applied between two forward passes moves experts between the
// workers; the logits before and after are those of the embedded engine,
// each worker holds exactly its new share, and the rows go where the new
// plan says.
TEST_F(ElasticTest, AnAppliedPlanMovesExpertsAndKeepsTheLogits) {
  WeightSelection dense_only;
  dense_only.expert_filter = [](int, int) { return false; };
  auto dense = ModelWeights::Load(cluster_.model_dir, dense_only);
  ASSERT_TRUE(dense.ok()) << dense.status();
  auto remote = GrpcExpertDispatch::Connect(cluster_.plan, spec_.hidden,
                                            cluster_.Endpoints(), {});
  ASSERT_TRUE(remote.ok()) << remote.status();
  ASSERT_TRUE((*remote)->AwaitWorkers(kStartTimeout).ok());
  ThreadPool pool(1);
  CpuModelRunner distributed(**dense, **remote, pool);
  const std::vector<int32_t> prompt = Prompt(24, 9);
  const std::vector<float> embedded = Logits(reference_->runner(), prompt);
  const std::vector<float> before = Logits(distributed, prompt);
  EXPECT_LE(MaxAbsDifference(embedded, before), 1e-5);

  // Version 2: one copy each, on other workers than version 1 had them
  // (w2 first in line), so experts move both ways.
  PlacementPlan next = PlanWithSlots(spec_, {12, 12, 12}, 1, /*version=*/2);
  for (std::vector<int>& holders : next.holders) {
    for (int& holder : holders) holder = 2 - holder;
  }
  ASSERT_TRUE(ValidatePlan(next).ok());
  PlacementChange change(**remote, [](std::function<void()> task) {
    task();  // no engine here: between two forward passes
    return absl::OkStatus();
  });
  const absl::StatusOr<v1::PlanChange> report = change.Apply(next);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->from_version(), 1);
  EXPECT_EQ(report->to_version(), 2);
  EXPECT_GE(report->switches(), 1);
  EXPECT_EQ((*remote)->placement_version(), 2);
  int loaded = 0, unloaded = 0;
  for (const v1::WorkerChange& worker : report->workers()) {
    loaded += worker.experts_loaded();
    unloaded += worker.experts_unloaded();
  }
  EXPECT_GT(loaded, 0);
  EXPECT_GT(unloaded, 0);
  for (size_t w = 0; w < next.workers.size(); ++w) {
    const v1::WorkerDescription description =
        Describe(cluster_.worker_addresses[w]);
    EXPECT_EQ(description.placement_version(), 2) << "w" << w;
    EXPECT_EQ(Held(description), next.ExpertsOf(static_cast<int>(w)))
        << "w" << w;
  }

  const std::vector<WorkerCallStats> stats_before = (*remote)->Stats();
  const std::vector<float> after = Logits(distributed, prompt);
  EXPECT_LE(MaxAbsDifference(embedded, after), 1e-5);
  EXPECT_LE(MaxAbsDifference(before, after), 1e-5);
  const std::vector<WorkerCallStats> stats_after = (*remote)->Stats();
  for (size_t w = 0; w < next.workers.size(); ++w) {
    EXPECT_EQ(stats_after[w].failed_calls, 0) << "w" << w;
    if (next.ExpertCount(static_cast<int>(w)) > 0) {
      EXPECT_GT(stats_after[w].calls, stats_before[w].calls) << "w" << w;
    }
  }
}

// A worker joins while 16 streams run and a rebalance gives it experts: no
// stream fails or changes its tokens. Then a worker restarted from the
// first plan's file is given its share of the plan in use and used again.
TEST_F(ElasticTest, AJoiningWorkerAndARebalanceUnderLoadFailNothing) {
  const std::string address = StartJoiningWorker("w3", 12);
  absl::StatusOr<v1::PlanChange> report;
  RunStreamsWhile([&] {
    v1::WorkerDescription joined;
    grpc::Status added = AddWorker("w3", address, &joined);
    ASSERT_TRUE(added.ok()) << added.error_message();
    EXPECT_EQ(joined.experts_size(), 0);
    EXPECT_EQ(joined.memory_budget_bytes(), 12 * ExpertBytes());
    grpc::ClientContext context;
    v1::PlanChange change;
    grpc::Status rebalanced =
        admin_->Rebalance(&context, v1::RebalanceRequest(), &change);
    report = rebalanced.ok()
                 ? absl::StatusOr<v1::PlanChange>(change)
                 : absl::StatusOr<v1::PlanChange>(FromGrpcStatus(rebalanced));
  });
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->to_version(), 2);
  auto plan = PlanFromJson(nlohmann::json::parse(report->plan_json()), "reply");
  ASSERT_TRUE(plan.ok()) << plan.status();
  const int w3 = plan->WorkerIndex("w3");
  ASSERT_GE(w3, 0);
  EXPECT_GT(plan->ExpertCount(w3), 0);
  EXPECT_EQ(Held(Describe(address)), plan->ExpertsOf(w3));
  for (const std::vector<int>& holders : plan->holders) {
    EXPECT_EQ(holders.size(), 2u);  // the copies stay
  }
  v1::RouterStatus status = GetRouterStatus(*stub_);
  EXPECT_EQ(status.placement_version(), 2);
  ASSERT_EQ(status.workers_size(), 4);
  EXPECT_EQ(status.workers(3).worker_id(), "w3");

  // w1 restarts from the version 1 plan file: the router gives it its
  // version 2 share and uses it again.
  cluster_.workers[1]->Signal(SIGKILL);
  cluster_.workers[1]->Wait();
  cluster_.workers[1] =
      StartWorker(cluster_, "w1", cluster_.worker_addresses[1]);
  ASSERT_TRUE(cluster_.workers[1]->AwaitAddress(kStartTimeout).ok());
  ASSERT_TRUE(Eventually([&] {
    const v1::WorkerDescription d = Describe(cluster_.worker_addresses[1]);
    return d.placement_version() == 2 &&
           Held(d) == plan->ExpertsOf(plan->WorkerIndex("w1")) &&
           !GetRouterStatus(*stub_).workers(1).down();
  }));
  const int64_t calls_before = GetRouterStatus(*stub_).workers(1).calls();
  RunStreamsWhile(nullptr);
  EXPECT_GT(GetRouterStatus(*stub_).workers(1).calls(), calls_before);
}

// A worker drained while 16 streams run: no stream fails, it holds no
// experts after, and the router no longer lists it.
TEST_F(ElasticTest, ADrainedWorkerFinishesItsRowsAndHoldsNothing) {
  // Room for the second copies without w0: a fourth worker joins first.
  const std::string address = StartJoiningWorker("w3", 12);
  v1::WorkerDescription joined;
  ASSERT_TRUE(AddWorker("w3", address, &joined).ok());
  absl::StatusOr<v1::PlanChange> report;
  RunStreamsWhile([&] {
    grpc::ClientContext context;
    v1::DrainWorkerRequest request;
    request.set_worker_id("w0");
    v1::PlanChange change;
    grpc::Status drained = admin_->DrainWorker(&context, request, &change);
    report = drained.ok()
                 ? absl::StatusOr<v1::PlanChange>(change)
                 : absl::StatusOr<v1::PlanChange>(FromGrpcStatus(drained));
  });
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(Describe(cluster_.worker_addresses[0]).experts_size(), 0);
  const v1::RouterStatus status = GetRouterStatus(*stub_);
  for (const v1::WorkerStatus& worker : status.workers()) {
    EXPECT_NE(worker.worker_id(), "w0");
  }
  EXPECT_EQ(status.workers_size(), 3);
  RunStreamsWhile(nullptr);
}

// Changes that cannot be made are refused before anything moves, naming
// what is wrong; the plan in use stays.
TEST_F(ElasticTest, RefusesChangesItCannotMakeNamingWhy) {
  auto apply = [&](const PlacementPlan& plan) {
    v1::ApplyPlanRequest request;
    request.set_plan_json(PlanToJson(plan).dump());
    grpc::ClientContext context;
    v1::PlanChange change;
    return admin_->ApplyPlan(&context, request, &change);
  };
  // Not newer.
  grpc::Status status = apply(cluster_.plan);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_HAS_SUBSTR(status.error_message(), "is not newer than");
  // A worker the router does not know.
  status = apply(PlanWithSlots(spec_, {12, 12, 12, 12}, 2, /*version=*/2));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_HAS_SUBSTR(status.error_message(), "no worker \"w3\"");
  // Every expert on w0, which has room for 12 of the 16.
  PlacementPlan crowded = PlanWithSlots(spec_, {16, 12, 12}, 1, 2);
  for (std::vector<int>& holders : crowded.holders) holders = {0};
  status = apply(crowded);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_HAS_SUBSTR(status.error_message(),
                    "plan version 2 gives worker w0 16 experts");
  // Another model's shape, and a plan without an expert size.
  TestModelSpec three_layers = spec_;
  three_layers.layers = 3;
  status = apply(PlanWithSlots(three_layers, {12, 12, 12}, 1, 2));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_HAS_SUBSTR(status.error_message(), "3 layers");
  PlacementPlan sizeless = PlanWithSlots(spec_, {12, 12, 12}, 1, 2);
  sizeless.expert_bytes = 0;
  status = apply(sizeless);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_HAS_SUBSTR(status.error_message(), "expert_bytes");
  // Not JSON.
  {
    v1::ApplyPlanRequest request;
    request.set_plan_json("{");
    grpc::ClientContext context;
    v1::PlanChange change;
    status = admin_->ApplyPlan(&context, request, &change);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_HAS_SUBSTR(status.error_message(), "plan_json");
  }
  // Workers: a known id, a dead address, an unknown drain.
  v1::WorkerDescription joined;
  status = AddWorker("w1", "127.0.0.1:1", &joined);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  status = AddWorker("w9", "127.0.0.1:1", &joined);
  EXPECT_NE(status.error_code(), grpc::StatusCode::OK);
  EXPECT_HAS_SUBSTR(status.error_message(), "w9");
  {
    grpc::ClientContext context;
    v1::DrainWorkerRequest request;
    request.set_worker_id("w9");
    v1::PlanChange change;
    status = admin_->DrainWorker(&context, request, &change);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  }
  const v1::RouterStatus router = GetRouterStatus(*stub_);
  EXPECT_EQ(router.placement_version(), 1);
  for (size_t w = 0; w < cluster_.plan.workers.size(); ++w) {
    EXPECT_EQ(Held(Describe(cluster_.worker_addresses[w])),
              cluster_.plan.ExpertsOf(static_cast<int>(w)))
        << "w" << w;
  }
  EXPECT_EQ(router.workers_size(), 3);
  RunStreamsWhile(nullptr);
}

// A worker started without a plan holds nothing and needs a budget.
TEST(JoiningWorkerTest, StartsEmptyWithABudgetAndNeedsOne) {
  Cluster cluster;
  cluster.model_dir =
      MakeTestModel({.format = WeightFormat::kFp8, .layers = 2});
  auto empty = StartEmptyWorker(cluster, "w5", 1 << 20);
  absl::StatusOr<std::string> address = empty->AwaitAddress(kStartTimeout);
  ASSERT_TRUE(address.ok()) << address.status();
  const v1::WorkerDescription description = Describe(*address);
  EXPECT_EQ(description.experts_size(), 0);
  EXPECT_EQ(description.memory_budget_bytes(), 1 << 20);
  EXPECT_EQ(description.placement_version(), 0);

  auto without = StartEmptyWorker(cluster, "w6", 0);
  int status = without->Wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status;
  EXPECT_HAS_SUBSTR(without->Stderr(), "--memory: the budget must be positive");
}

}  // namespace
}  // namespace moe::testing

// Expert workers that die while serving, with every expert on two of three
// workers (moe-plan --copies 2): the rows a killed worker owed go to the
// other copy within the same step, so every stream ends with the tokens of
// the embedded engine; a restarted worker is probed and used again; only an
// expert with no live holder fails its requests. And copies of one worker id
// (as a Kubernetes Deployment's pods are) share its calls. Real processes on
// 127.0.0.1.
#include <signal.h>
#include <sys/wait.h>

#include <functional>
#include <thread>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/support/child_process.h"
#include "tests/support/expect_has_substr.h"
#include "tests/support/http_get.h"
#include "tests/support/metric_sum.h"
#include "tests/support/raw_grpc.h"
#include "tests/support/test_cluster.h"

namespace moe::testing {
namespace {

class FailoverTest : public ::testing::TestWithParam<std::string> {
 protected:
  static constexpr int kStreams = 16;
  static constexpr int kTokens = 48;

  void SetUp() override {
    StartCluster(spec_, PlanWithSlots(spec_, {12, 12, 12}, /*copies=*/2),
                 {"--worker-timeout-ms", "2000", "--activation-link",
                  GetParam(), "--max-batch", "16"},
                 cluster_);
    reference_ = std::make_unique<EngineReference>(cluster_.model_dir);
    stub_ = RouterStub(cluster_);
    for (int r = 0; r < kStreams; ++r) requests_.push_back(Request(r));
  }

  v1::RouterGenerateRequest Request(int r) const {
    v1::RouterGenerateRequest request =
        GreedyRequest(Prompt(4 + r, r), kTokens);
    request.set_ignore_eos(true);
    return request;
  }

  // kStreams greedy streams at once; `on_first` runs once, when the first
  // stream's first tokens came. Each must end with the embedded engine's
  // tokens.
  void RunStreamsExpectingEngineTokens(const std::function<void()>& on_first) {
    reference_->ExpectItsTokens(RunConcurrently(*stub_, requests_, on_first),
                                requests_);
  }

  const TestModelSpec spec_{.format = WeightFormat::kFp8, .layers = 2};
  Cluster cluster_;
  std::unique_ptr<EngineReference> reference_;
  std::unique_ptr<v1::Router::Stub> stub_;
  std::vector<v1::RouterGenerateRequest> requests_;
};

INSTANTIATE_TEST_SUITE_P(Links, FailoverTest,
                         ::testing::Values("rpc", "stream"),
                         [](const auto& info) { return info.param; });

TEST_P(FailoverTest, AKilledWorkersRowsGoToTheOtherCopyAndItIsUsedAgain) {
  RunStreamsExpectingEngineTokens(
      [&] { cluster_.workers[1]->Signal(SIGKILL); });
  v1::RouterStatus status = GetRouterStatus(*stub_);
  ASSERT_EQ(status.workers_size(), 3);
  EXPECT_TRUE(status.workers(1).down());
  EXPECT_GT(status.workers(1).rows_failed_over(), 0);
  EXPECT_FALSE(status.workers(0).down());
  EXPECT_FALSE(status.workers(2).down());

  // Restarted at its address, it is probed, found serving the plan, and
  // used again without restarting the router.
  cluster_.workers[1]->Wait();
  cluster_.workers[1] =
      StartWorker(cluster_, "w1", cluster_.worker_addresses[1]);
  ASSERT_TRUE(cluster_.workers[1]->AwaitAddress(kStartTimeout).ok());
  ASSERT_TRUE(
      Eventually([&] { return !GetRouterStatus(*stub_).workers(1).down(); }));
  status = GetRouterStatus(*stub_);
  EXPECT_EQ(status.workers(1).recoveries(), 1);
  const int64_t calls_before = status.workers(1).calls();
  RunStreamsExpectingEngineTokens(nullptr);
  status = GetRouterStatus(*stub_);
  EXPECT_GT(status.workers(1).calls(), calls_before);
  EXPECT_FALSE(status.workers(1).down());
}

TEST_P(FailoverTest, AnExpertWithNoLiveHolderFailsNamingItAndTheWorkers) {
  cluster_.workers[0]->Signal(SIGKILL);
  cluster_.workers[1]->Signal(SIGKILL);
  cluster_.workers[0]->Wait();
  cluster_.workers[1]->Wait();
  // Every expert held by w0 and w1 only: most prompts need one.
  const StreamResult result = RunGenerate(*stub_, Request(3));
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << result.status.error_message();
  EXPECT_HAS_SUBSTR(result.status.error_message(), "has no live holder");
  EXPECT_HAS_SUBSTR(result.status.error_message(), "tried w");
  EXPECT_LT(result.elapsed, absl::Seconds(10));
}

// Polls the router's grpc.health.v1 status for up to 10 s until it is
// `wanted`; returns the last one seen.
std::string AwaitHealth(const std::string& address, const std::string& wanted) {
  std::string status;
  Eventually([&] { return (status = HealthStatus(address)) == wanted; });
  return status;
}

// The router is SERVING while every expert has a live holder, also when no
// request is running to find a dead worker, and NOT_SERVING otherwise.
TEST_P(FailoverTest, RouterHealthFollowsWhetherEveryExpertIsHeld) {
  EXPECT_EQ(HealthStatus(cluster_.router_address), "SERVING");
  cluster_.workers[0]->Signal(SIGKILL);
  cluster_.workers[0]->Wait();
  // Found down by its probe; the other copies hold every expert.
  EXPECT_TRUE(
      Eventually([&] { return GetRouterStatus(*stub_).workers(0).down(); }));
  EXPECT_EQ(HealthStatus(cluster_.router_address), "SERVING");
  cluster_.workers[1]->Signal(SIGKILL);
  cluster_.workers[1]->Wait();
  EXPECT_EQ(AwaitHealth(cluster_.router_address, "NOT_SERVING"), "NOT_SERVING");
  for (int w : {0, 1}) {
    cluster_.workers[w] = StartWorker(cluster_, cluster_.plan.workers[w].id,
                                      cluster_.worker_addresses[w]);
    ASSERT_TRUE(cluster_.workers[w]->AwaitAddress(kStartTimeout).ok());
  }
  EXPECT_EQ(AwaitHealth(cluster_.router_address, "SERVING"), "SERVING");
}

// SIGTERM: the router says NOT_SERVING, refuses new streams, lets the one
// running finish, then exits.
TEST_P(FailoverTest, SigtermLetsTheRunningStreamFinish) {
  v1::RouterGenerateRequest request = Request(1);
  request.set_max_tokens(120);
  std::string health_while_draining;
  const StreamResult result =
      RunGenerate(*stub_, request, absl::Seconds(60), [&] {
        cluster_.router->Signal(SIGTERM);
        health_while_draining =
            AwaitHealth(cluster_.router_address, "NOT_SERVING");
      });
  EXPECT_TRUE(result.status.ok()) << result.status.error_message();
  EXPECT_EQ(result.tokens.size(), 120u);
  EXPECT_EQ(health_while_draining, "NOT_SERVING");
  const int exit_status = cluster_.router->Wait();
  EXPECT_TRUE(WIFEXITED(exit_status) && WEXITSTATUS(exit_status) == 0)
      << exit_status;
}

// Two processes of worker w0, given to the router as two addresses of one
// id, hold the same experts: the router's calls for w0 alternate between
// them, and the tokens are the embedded engine's.
TEST(WorkerCopiesTest, CopiesOfOneWorkerIdShareItsCalls) {
  const TestModelSpec spec{.format = WeightFormat::kFp8, .layers = 2};
  const std::vector<std::string> metrics = {"--metrics-listen", "127.0.0.1:0"};
  Cluster cluster;
  StartCluster(spec, PlanWithSlots(spec, {12, 12}), {}, cluster, metrics);
  // Its own log: StartWorker names the logs by worker id.
  auto copy = ChildProcess::Start(
      {SiblingBinary("moe-expert-worker"), "--model", cluster.model_dir,
       "--plan", cluster.plan_path, "--worker-id", "w0", "--listen",
       "127.0.0.1:0", "--threads", "1", "--metrics-listen", "127.0.0.1:0"},
      LogPrefix("w0_copy"));
  ASSERT_TRUE(copy.ok()) << copy.status();
  absl::StatusOr<std::string> copy_address =
      (*copy)->AwaitAddress(kStartTimeout);
  ASSERT_TRUE(copy_address.ok()) << copy_address.status();
  auto router = ChildProcess::Start(
      {SiblingBinary("moe-router"), "--model", cluster.model_dir, "--plan",
       cluster.plan_path, "--threads", "1", "--listen", "127.0.0.1:0",
       "--workers",
       absl::StrCat("w0=", cluster.worker_addresses[0], ",w0=", *copy_address,
                    ",w1=", cluster.worker_addresses[1])},
      LogPrefix("copies_router"));
  ASSERT_TRUE(router.ok()) << router.status();
  absl::StatusOr<std::string> router_address =
      (*router)->AwaitAddress(kStartTimeout);
  ASSERT_TRUE(router_address.ok()) << router_address.status();

  std::vector<v1::RouterGenerateRequest> requests;
  for (int r = 0; r < 4; ++r) {
    requests.push_back(GreedyRequest(Prompt(5 + r, r), 8));
    requests.back().set_ignore_eos(true);
  }
  auto stub = v1::Router::NewStub(
      grpc::CreateChannel(*router_address, grpc::InsecureChannelCredentials()));
  EngineReference(cluster.model_dir)
      .ExpectItsTokens(RunConcurrently(*stub, requests), requests);

  std::vector<double> batches;
  for (ChildProcess* w0 : {cluster.workers[0].get(), copy->get()}) {
    absl::StatusOr<std::string> address =
        w0->AwaitAddress(kStartTimeout, " metrics on ");
    ASSERT_TRUE(address.ok()) << address.status();
    absl::StatusOr<std::string> text = HttpGet(*address, "/metrics");
    ASSERT_TRUE(text.ok()) << text.status();
    batches.push_back(MetricSum(*text, "moe_worker_batches_total"));
  }
  // Round robin: the two differ by the calls that found one busy at most,
  // so each has a good share.
  EXPECT_GT(batches[0], 0.25 * (batches[0] + batches[1]));
  EXPECT_GT(batches[1], 0.25 * (batches[0] + batches[1]));
}

// With --max-connection-age-s, a worker closes older connections, so a
// router resolves its name again and finds copies added behind it.
TEST(WorkerCopiesTest, AgedConnectionsAreClosed) {
  const TestModelSpec spec{.format = WeightFormat::kFp8, .layers = 2};
  Cluster cluster;
  StartCluster(spec, PlanWithSlots(spec, {16}), {}, cluster,
               {"--max-connection-age-s", "1"});
  auto channel = grpc::CreateChannel(cluster.worker_addresses[0],
                                     grpc::InsecureChannelCredentials());
  ASSERT_TRUE(channel->WaitForConnected(
      absl::ToChronoTime(absl::Now() + absl::Seconds(10))));
  EXPECT_TRUE(
      Eventually([&] { return channel->GetState(false) != GRPC_CHANNEL_READY; },
                 absl::Seconds(10)));
}

TEST(WorkerCopiesTest, SeveralAddressesOfAnIdMustBeIpv4) {
  absl::StatusOr<std::vector<WorkerEndpoint>> endpoints =
      ParseWorkerEndpoints("w0=127.0.0.1:5,w1=127.0.0.1:6,w0=127.0.0.2:7");
  ASSERT_TRUE(endpoints.ok()) << endpoints.status();
  ASSERT_EQ(endpoints->size(), 2u);
  EXPECT_EQ((*endpoints)[0].address, "ipv4:127.0.0.1:5,127.0.0.2:7");
  EXPECT_EQ((*endpoints)[1].address, "127.0.0.1:6");
  EXPECT_HAS_SUBSTR(
      ParseWorkerEndpoints("w0=localhost:5,w0=127.0.0.1:6").status().message(),
      "worker w0 is given several addresses, which must then be IPv4");
  EXPECT_HAS_SUBSTR(
      ParseWorkerEndpoints("w0=127.0.0.1:5,w0=127.0.0.1:x").status().message(),
      "must then be IPv4");
}

}  // namespace
}  // namespace moe::testing

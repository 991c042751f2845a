// The gateway's, the router's and the expert workers' Prometheus endpoints
// (--metrics-listen), scraped over HTTP from real processes on 127.0.0.1:
// the text passes `promtool check metrics`, and the counters move by what
// the requests did (requests by status code, tokens in and out, tokens
// generated, rows routed per expert and computed per expert, calls per
// worker).
#include <cstdlib>

#include "core/util/file_util.h"
#include "core/util/subprocess.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "moe/v1/inference.grpc.pb.h"
#include "tests/support/child_process.h"
#include "tests/support/http_get.h"
#include "tests/support/metric_sum.h"
#include "tests/support/test_cluster.h"

namespace moe::testing {
namespace {

// `promtool check metrics` on the text; OK, or its complaint.
absl::Status PromtoolCheck(const std::string& text) {
  const std::string file = LogPrefix("scrape.prom");
  EXPECT_TRUE(WriteStringToFile(file, text).ok());
  const std::string log = LogPrefix("promtool.log");
  const absl::Status status =
      RunProgram({"/bin/sh", "-c", "promtool check metrics < " + file}, log);
  if (status.ok()) return status;
  absl::StatusOr<std::string> complaint = ReadFileToString(log);
  return absl::InternalError(complaint.ok() ? *complaint : "promtool failed");
}

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::system("command -v promtool >/dev/null") != 0) {
      GTEST_SKIP() << "promtool (Debian's prometheus package; "
                      "scripts/install-deps.sh installs it) is not here";
    }
    const std::vector<std::string> metrics = {"--metrics-listen",
                                              "127.0.0.1:0"};
    StartCluster(spec_, PlanWithSlots(spec_, {12, 12}), metrics, cluster_,
                 metrics);
    for (auto& worker : cluster_.workers) {
      absl::StatusOr<std::string> address =
          worker->AwaitAddress(kStartTimeout, " metrics on ");
      ASSERT_TRUE(address.ok()) << address.status();
      worker_metrics_.push_back(*address);
    }
    absl::StatusOr<std::string> address =
        cluster_.router->AwaitAddress(kStartTimeout, " metrics on ");
    ASSERT_TRUE(address.ok()) << address.status();
    router_metrics_ = *address;
  }

  std::string Scrape(const std::string& address) {
    absl::StatusOr<std::string> text = HttpGet(address, "/metrics");
    EXPECT_TRUE(text.ok()) << text.status();
    if (!text.ok()) return "";
    const absl::Status checked = PromtoolCheck(*text);
    EXPECT_TRUE(checked.ok()) << checked.message() << "\n" << *text;
    return *text;
  }

  const TestModelSpec spec_{.format = WeightFormat::kFp8, .layers = 2};
  Cluster cluster_;
  std::vector<std::string> worker_metrics_;
  std::string router_metrics_;
};

TEST_F(MetricsTest, CountersMoveByWhatTheRequestsDid) {
  std::string router = Scrape(router_metrics_);
  EXPECT_EQ(MetricSum(router, "moe_router_generated_tokens_total"), 0);
  EXPECT_EQ(MetricSum(router, "moe_router_worker_up", {"worker=\"w1\""}), 1);
  EXPECT_EQ(MetricSum(router, "moe_router_placement_version"), 1);

  auto stub = RouterStub(cluster_);
  int64_t rows = 0;
  for (int r = 0; r < 3; ++r) {
    v1::RouterGenerateRequest request = GreedyRequest(Prompt(5 + r, r), 8);
    request.set_ignore_eos(true);
    const StreamResult result = RunGenerate(*stub, request);
    ASSERT_TRUE(result.status.ok()) << result.status.error_message();
    // Every prompt token and every token fed back passes every layer.
    rows += 5 + r + 8 - 1;
  }
  const double routed = static_cast<double>(rows * spec_.layers * 2);

  router = Scrape(router_metrics_);
  EXPECT_EQ(MetricSum(router, "moe_router_generated_tokens_total"), 24);
  EXPECT_EQ(MetricSum(router, "moe_router_routed_tokens_total"), routed);
  EXPECT_GT(MetricSum(router, "moe_router_steps_total"), 0);
  EXPECT_EQ(MetricSum(router, "moe_router_step_seconds_count"),
            MetricSum(router, "moe_router_steps_total"));
  EXPECT_EQ(MetricSum(router, "moe_router_requests_running"), 0);
  EXPECT_EQ(MetricSum(router, "moe_router_kv_blocks_used"), 0);
  double rows_computed = 0;
  for (size_t w = 0; w < worker_metrics_.size(); ++w) {
    const std::string id = cluster_.plan.workers[w].id;
    const std::string worker = Scrape(worker_metrics_[w]);
    EXPECT_GT(MetricSum(worker, "moe_worker_batches_total"), 0) << id;
    EXPECT_EQ(MetricSum(worker, "moe_worker_compute_seconds_count"),
              MetricSum(worker, "moe_worker_batches_total"))
        << id;
    EXPECT_EQ(MetricSum(worker, "moe_worker_experts"),
              cluster_.plan.ExpertCount(static_cast<int>(w)))
        << id;
    EXPECT_GT(MetricSum(worker, "moe_worker_expert_bytes"), 0) << id;
    // The passes' time, shared out over the experts.
    EXPECT_NEAR(MetricSum(worker, "moe_worker_expert_compute_seconds_total"),
                MetricSum(worker, "moe_worker_compute_seconds_sum"), 1e-6)
        << id;
    rows_computed += MetricSum(worker, "moe_worker_rows_total");
    // The router's count of this worker's calls is what the worker timed.
    const std::string label = "worker=\"" + id + "\"";
    EXPECT_EQ(
        MetricSum(router, "moe_router_worker_call_seconds_count", {label}),
        MetricSum(router, "moe_router_worker_calls_total", {label}))
        << id;
    EXPECT_GT(MetricSum(router, "moe_router_worker_calls_total", {label}), 0)
        << id;
    EXPECT_EQ(
        MetricSum(router, "moe_router_worker_failed_calls_total", {label}), 0)
        << id;
  }
  // Each routed (row, expert) was computed by the one worker holding it.
  EXPECT_EQ(rows_computed, routed);
  // One expert's rows, on both sides.
  const std::vector<std::string> expert = {"layer=\"1\"", "expert=\"3\""};
  double computed = 0;
  for (const std::string& address : worker_metrics_) {
    computed += MetricSum(Scrape(address), "moe_worker_rows_total", expert);
  }
  EXPECT_EQ(computed,
            MetricSum(router, "moe_router_routed_tokens_total", expert));
}

TEST_F(MetricsTest, GatewayCountsRequestsByCodeAndTokensBothWays) {
  std::string address;
  const std::unique_ptr<ChildProcess> gateway =
      StartGateway(cluster_, {"--metrics-listen", "127.0.0.1:0"}, address);
  ASSERT_NE(gateway, nullptr);
  absl::StatusOr<std::string> metrics =
      gateway->AwaitAddress(kStartTimeout, " metrics on ");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  auto stub = v1::Inference::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));

  // Two requests run, one is refused for its bad field.
  int prompt_tokens = 0;
  for (int max_tokens : {4, 0, 6}) {
    v1::GenerateRequest request;
    request.set_text("one two three");
    request.set_max_tokens(max_tokens);
    request.set_ignore_eos(true);
    request.set_temperature(0);
    grpc::ClientContext context;
    auto reader = stub->Generate(&context, request);
    v1::GenerateResponse response;
    while (reader->Read(&response)) {
      prompt_tokens = response.usage().prompt_tokens();
    }
    const grpc::Status status = reader->Finish();
    EXPECT_EQ(status.ok(), max_tokens > 0) << status.error_message();
  }
  ASSERT_GT(prompt_tokens, 0);

  const std::string text = Scrape(*metrics);
  EXPECT_EQ(MetricSum(text, "moe_gateway_requests_total", {"code=\"OK\""}), 2);
  EXPECT_EQ(MetricSum(text, "moe_gateway_requests_total",
                      {"code=\"INVALID_ARGUMENT\""}),
            1);
  EXPECT_EQ(MetricSum(text, "moe_gateway_request_duration_seconds_count"), 3);
  EXPECT_EQ(MetricSum(text, "moe_gateway_prompt_tokens_total"),
            2 * prompt_tokens);
  EXPECT_EQ(MetricSum(text, "moe_gateway_completion_tokens_total"), 10);
  EXPECT_EQ(MetricSum(text, "moe_gateway_time_to_first_token_seconds_count"),
            2);
  // Every token after a request's first message counts one gap.
  EXPECT_LE(MetricSum(text, "moe_gateway_inter_token_latency_seconds_count"),
            8);
  EXPECT_GT(MetricSum(text, "moe_gateway_inter_token_latency_seconds_count"),
            0);
  EXPECT_EQ(MetricSum(text, "moe_gateway_requests_running"), 0);
  EXPECT_EQ(MetricSum(text, "moe_gateway_requests_queued"), 0);
}

}  // namespace
}  // namespace moe::testing

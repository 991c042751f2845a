// A router and three expert workers as real processes on 127.0.0.1, with an
// uneven placement plan, against the embedded engine on the same FP8 model.
#include <signal.h>
#include <sys/wait.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "core/placement/placement_planner.h"
#include "core/util/thread_pool.h"
#include "engine/cpu_model_runner.h"
#include "engine/generation.h"
#include "engine/gpu_model_runner.h"
#include "engine/local_expert_dispatch.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "link/grpc_message_link.h"
#include "moe/v1/expert.grpc.pb.h"
#include "moe/v1/router.grpc.pb.h"
#include "router_service/grpc_expert_dispatch.h"
#include "rpc/tensor_codec.h"
#include "tests/support/child_process.h"
#include "tests/support/expect_has_substr.h"
#include "tests/support/test_cluster.h"
#include "tests/support/test_models.h"
#ifdef MOE_HAVE_CUDA
#include "core/cuda/device_info.h"
#endif

namespace moe {
namespace {

using testing::ChildProcess;
using testing::Cluster;
using testing::GreedyRequest;
using testing::kStartTimeout;
using testing::LogPrefix;
using testing::PlanWithSlots;
using testing::Prompt;
using testing::RouterStub;
using testing::RunGenerate;
using testing::SiblingBinary;
using testing::StartCluster;
using testing::StartWorker;
using testing::StreamResult;
using testing::TestModelSpec;

TestModelSpec Fp8Spec(Architecture architecture) {
  TestModelSpec spec;
  spec.architecture = architecture;
  spec.format = WeightFormat::kFp8;
  spec.scales = architecture == Architecture::kMixtral
                    ? ScaleGranularity::kPerTensor
                    : ScaleGranularity::kPerChannel;
  spec.layers = 3;
  spec.intermediate = 2048;  // 128 KiB per FP8 matrix: many pages each
  return spec;
}

// Three workers with room for 12, 8 and 5 experts of the model's 24: the
// small one shares its machine with the router.
PlacementPlan UnevenPlan(const TestModelSpec& spec) {
  return PlanWithSlots(spec, {12, 8, 5}, /*copies=*/1, /*version=*/3);
}

// A long greedy generation during which worker `index` is killed, once the
// first tokens came.
StreamResult GenerateWhileKillingWorker(v1::Router::Stub& stub,
                                        Cluster& cluster, int index) {
  v1::RouterGenerateRequest request = GreedyRequest(Prompt(8, 4), 400);
  request.set_ignore_eos(true);
  return RunGenerate(stub, request, absl::Seconds(20),
                     [&] { cluster.workers[index]->Signal(SIGKILL); });
}

// Generates `request` once a restarted worker is used again: the router's
// channel reconnects within its backoff of at most a second.
StreamResult GenerateOnceReconnected(v1::Router::Stub& stub,
                                     const v1::RouterGenerateRequest& request) {
  StreamResult result;
  for (int attempt = 0; attempt < 50; ++attempt) {
    result = RunGenerate(stub, request);
    if (result.status.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return result;
}

// max |expected - actual| / max |expected| over all logits.
double RelativeMaxError(const std::vector<float>& expected,
                        const std::vector<float>& actual) {
  EXPECT_EQ(expected.size(), actual.size());
  double max_error = 0, max_logit = 0;
  for (size_t i = 0; i < std::min(expected.size(), actual.size()); ++i) {
    max_error = std::max(max_error, std::abs(double{expected[i]} - actual[i]));
    max_logit = std::max(max_logit, std::abs(double{expected[i]}));
  }
  return max_error / max_logit;
}

// RelativeMaxError between the logits of two runners on `tokens`, each from
// an empty cache; infinite (and a test failure) when either fails.
double LogitsError(ModelRunner& expected_runner, ModelRunner& actual_runner,
                   const std::vector<int32_t>& tokens, LogitsFor which) {
  SequenceKvCache a = expected_runner.NewCache();
  SequenceKvCache b = actual_runner.NewCache();
  auto expected = expected_runner.Forward(tokens, a, which);
  auto actual = actual_runner.Forward(tokens, b, which);
  EXPECT_TRUE(expected.ok()) << expected.status();
  EXPECT_TRUE(actual.ok()) << actual.status();
  if (!expected.ok() || !actual.ok()) return INFINITY;
  return RelativeMaxError(*expected, *actual);
}

// A cluster of the spec's FP8 model and the embedded engine on the same
// checkpoint: the reference the cluster is checked against.
class ClusterWithReference {
 protected:
  void Start(const TestModelSpec& spec,
             const std::vector<std::string>& router_flags,
             const std::vector<std::string>& worker_flags) {
    spec_ = spec;
    StartCluster(spec_, UnevenPlan(spec_), router_flags, cluster_,
                 worker_flags);
    auto weights = ModelWeights::Load(cluster_.model_dir);
    ASSERT_TRUE(weights.ok()) << weights.status();
    weights_ = std::move(*weights);
    local_ = std::make_unique<LocalExpertDispatch>(*weights_, pool_);
    embedded_ = std::make_unique<CpuModelRunner>(*weights_, *local_, pool_);
  }

  TestModelSpec spec_;
  Cluster cluster_;
  ThreadPool pool_{1};
  std::unique_ptr<ModelWeights> weights_;
  std::unique_ptr<LocalExpertDispatch> local_;
  std::unique_ptr<ModelRunner> embedded_;
};

class ClusterTest : public ::testing::TestWithParam<Architecture>,
                    protected ClusterWithReference {
 protected:
  // Two micro-batches: each layer's worker calls of one overlap the other's
  // attention; the router process sends them over activation links (the
  // in-process dispatches below choose their own way).
  void SetUp() override {
    Start(Fp8Spec(GetParam()),
          {"--micro-batches", "2", "--activation-link", "stream"}, {});
  }

  // The router's forward pass with its experts on the workers, reached as
  // `options` say, gives the embedded engine's logits, and every worker took
  // part.
  void ExpectLogitsMatch(const GrpcExpertDispatch::Options& options) {
    WeightSelection dense_only;
    dense_only.expert_filter = [](int, int) { return false; };
    auto dense = ModelWeights::Load(cluster_.model_dir, dense_only);
    ASSERT_TRUE(dense.ok()) << dense.status();
    auto remote = GrpcExpertDispatch::Connect(cluster_.plan, spec_.hidden,
                                              cluster_.Endpoints(), options);
    ASSERT_TRUE(remote.ok()) << remote.status();
    ASSERT_TRUE((*remote)->AwaitWorkers(kStartTimeout).ok());
    CpuModelRunner distributed(**dense, **remote, pool_);

    EXPECT_LE(LogitsError(*embedded_, distributed, Prompt(40, 5),
                          LogitsFor::kAllTokens),
              1e-6);
    for (const WorkerCallStats& stats : (*remote)->Stats()) {
      EXPECT_GT(stats.calls, 0) << stats.id;
      EXPECT_EQ(stats.failed_calls, 0) << stats.id;
      EXPECT_EQ(stats.links_opened,
                options.link == ActivationLinkKind::kRpc ? 0 : 1)
          << stats.id;
    }
  }
};

INSTANTIATE_TEST_SUITE_P(Architectures, ClusterTest,
                         ::testing::Values(Architecture::kMixtral,
                                           Architecture::kSkyworkMoe),
                         [](const auto& info) {
                           return ArchitectureName(info.param);
                         });

// The router's forward pass with its experts on the three worker processes
// gives the embedded engine's logits. Each worker returns the weighted sum of
// its experts in FP32 and the router adds the partial sums; with top-2 the two
// terms meet in one addition either way, so the logits agree to rounding.
TEST_P(ClusterTest, LogitsMatchEmbeddedEngine) { ExpectLogitsMatch({}); }

// The same with every layer's rows as messages on one gRPC stream per worker.
TEST_P(ClusterTest, LogitsMatchEmbeddedEngineOverActivationLinks) {
  GrpcExpertDispatch::Options options;
  options.link = ActivationLinkKind::kStream;
  ExpectLogitsMatch(options);
}

// NCCL links asked for: workers on a CPU still take their rows over a gRPC
// stream, so one cluster mixes GPU and CPU workers.
TEST_P(ClusterTest, CpuWorkersTakeStreamLinksWhenNcclIsAsked) {
  GrpcExpertDispatch::Options options;
  options.link = ActivationLinkKind::kNccl;
  options.nccl_device = 0;
  ExpectLogitsMatch(options);
}

// A worker on a CPU refuses an NCCL link, saying why.
TEST_P(ClusterTest, CpuWorkerRefusesAnNcclLink) {
  auto stub = v1::ExpertLink::NewStub(grpc::CreateChannel(
      cluster_.worker_addresses[0], grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  v1::NcclLinkRequest request;
  request.set_connect_timeout_ms(1000);
  v1::NcclLinkReply reply;
  const grpc::Status status = stub->OpenNccl(&context, request, &reply);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_HAS_SUBSTR(status.error_message(), "computes on the CPU");
}

// A worker answers every frame on an activation link, in order: a frame that
// is not a LinkRequest and a call it cannot compute get errors naming what is
// wrong, and the calls around them their results.
TEST_P(ClusterTest, WorkerAnswersEveryLinkFrameInOrder) {
  const auto held = cluster_.plan.ExpertsOf(0);
  ASSERT_FALSE(held.empty());
  const auto [layer, expert] = held.front();
  std::vector<float> x(spec_.hidden);
  for (int k = 0; k < spec_.hidden; ++k) x[k] = 0.02f * (k % 13) - 0.1f;
  v1::LinkRequest good;
  good.mutable_compute()->set_layer(layer);
  EncodeTensor(x.data(), 1, spec_.hidden, v1::ACTIVATION_DTYPE_FP32,
               good.mutable_compute()->mutable_rows());
  good.mutable_compute()->add_assignments_per_row(1);
  good.mutable_compute()->add_expert_ids(expert);
  good.mutable_compute()->add_expert_weights(1.0f);
  v1::LinkRequest bad_layer = good;
  bad_layer.mutable_compute()->set_layer(spec_.layers);

  auto stub = v1::ExpertLink::NewStub(grpc::CreateChannel(
      cluster_.worker_addresses[0], grpc::InsecureChannelCredentials()));
  std::unique_ptr<MessageLink> link = OpenGrpcStreamLink(*stub);
  for (const std::string& frame :
       {good.SerializeAsString(), std::string("\xff\xff not a request"),
        bad_layer.SerializeAsString(), good.SerializeAsString()}) {
    ASSERT_TRUE(link->Send(frame).ok());
  }
  std::vector<v1::LinkReply> replies(4);
  for (v1::LinkReply& reply : replies) {
    absl::StatusOr<std::string> frame =
        link->Receive(absl::Now() + absl::Seconds(10));
    ASSERT_TRUE(frame.ok()) << frame.status();
    ASSERT_TRUE(reply.ParseFromString(*frame));
  }
  EXPECT_EQ(replies[1].status_code(),
            static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_HAS_SUBSTR(replies[1].status_message(), "link frame");
  EXPECT_EQ(replies[2].status_code(),
            static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_HAS_SUBSTR(replies[2].status_message(), "layer: ");

  std::vector<float> expected(spec_.hidden);
  std::vector<RowFailure> none;
  const ExpertAssignment assignment{0, expert, 1.0f};
  ASSERT_TRUE(local_
                  ->Compute({layer, x.data(), 1, {&assignment, 1}, {}},
                            expected.data(), none)
                  .ok());
  for (int i : {0, 3}) {
    ASSERT_EQ(replies[i].status_code(), 0) << replies[i].status_message();
    std::vector<float> out;
    ASSERT_TRUE(DecodeTensor(replies[i].compute().output(), "output",
                             spec_.hidden, &out)
                    .ok());
    EXPECT_EQ(out, expected) << "reply " << i;
  }
}

TEST_P(ClusterTest, Bf16ActivationsStayClose) {
  GrpcExpertDispatch::Options options;
  options.activation_dtype = v1::ACTIVATION_DTYPE_BF16;
  auto remote = GrpcExpertDispatch::Connect(cluster_.plan, spec_.hidden,
                                            cluster_.Endpoints(), options);
  ASSERT_TRUE(remote.ok()) << remote.status();
  CpuModelRunner distributed(*weights_, **remote, pool_);
  const double error = LogitsError(*embedded_, distributed, Prompt(12, 8),
                                   LogitsFor::kLastToken);
  EXPECT_LE(error, 2e-2);
  EXPECT_GT(error, 0.0);  // the rounding did happen
}

// Concurrent requests batched by the router give each the tokens the
// embedded engine gives it alone.
TEST_P(ClusterTest, GreedyTokensMatchEmbeddedEngine) {
  constexpr int kRequests = 6;
  std::vector<StreamResult> results(kRequests);
  std::vector<std::thread> clients;
  auto stub = RouterStub(cluster_);
  for (int r = 0; r < kRequests; ++r) {
    clients.emplace_back([&, r] {
      results[r] =
          RunGenerate(*stub, GreedyRequest(Prompt(3 + 7 * r, r), 12 + 3 * r));
    });
  }
  for (std::thread& client : clients) client.join();
  for (int r = 0; r < kRequests; ++r) {
    GenerationRequest request;
    request.prompt = Prompt(3 + 7 * r, r);
    request.max_tokens = 12 + 3 * r;
    auto expected = Generate(*embedded_, request);
    ASSERT_TRUE(expected.ok()) << expected.status();
    ASSERT_TRUE(results[r].status.ok()) << results[r].status.error_message();
    EXPECT_EQ(results[r].tokens, expected->tokens) << "request " << r;
    EXPECT_EQ(results[r].last.completion_tokens(),
              static_cast<int>(expected->tokens.size()));
    EXPECT_EQ(results[r].last.prompt_tokens(), 3 + 7 * r);
    EXPECT_EQ(results[r].last.finish_reason(),
              expected->finish_reason == FinishReason::kEos
                  ? v1::FINISH_REASON_EOS
                  : v1::FINISH_REASON_LENGTH);
  }

  grpc::ClientContext context;
  v1::RouterStatus status;
  ASSERT_TRUE(stub->GetStatus(&context, {}, &status).ok());
  EXPECT_EQ(status.placement_version(), cluster_.plan.version);
  EXPECT_EQ(status.running_requests(), 0);
  EXPECT_EQ(status.kv_tokens_used(), 0);
  EXPECT_EQ(status.kv_blocks_free(), status.kv_blocks_total());
  // The batch ran as two micro-batches, attention overlapping worker calls.
  EXPECT_GT(status.split_passes(), 0);
  EXPECT_GT(status.overlapped_attention_us(), 0);
  EXPECT_LE(status.overlapped_attention_us(), status.attention_us());
  int64_t routed = 0;
  for (int64_t count : status.routed_token_counts()) routed += count;
  // Every prompt token and every fed-back token passes every layer, top-2.
  int64_t rows = 0;
  for (int r = 0; r < kRequests; ++r) {
    rows += 3 + 7 * r + static_cast<int64_t>(results[r].tokens.size()) - 1;
  }
  EXPECT_EQ(routed, rows * spec_.layers * 2);
  ASSERT_EQ(status.workers_size(), 3);
  for (const v1::WorkerStatus& worker : status.workers()) {
    EXPECT_GT(worker.calls(), 0) << worker.worker_id();
    EXPECT_EQ(worker.failed_calls(), 0) << worker.worker_id();
  }
}

TEST_P(ClusterTest, InvalidRequestsNameTheField) {
  auto stub = RouterStub(cluster_);
  StreamResult bad_token = RunGenerate(*stub, GreedyRequest({1, 400}, 4));
  EXPECT_EQ(bad_token.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_HAS_SUBSTR(bad_token.status.error_message(), "prompt");
  StreamResult no_tokens = RunGenerate(*stub, GreedyRequest({1, 5}, 0));
  EXPECT_EQ(no_tokens.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_HAS_SUBSTR(no_tokens.status.error_message(), "max_tokens");
  v1::RouterGenerateRequest bad_top_p = GreedyRequest({1, 5}, 4);
  bad_top_p.mutable_sampling()->set_top_p(1.5f);
  EXPECT_HAS_SUBSTR(RunGenerate(*stub, bad_top_p).status.error_message(),
                    "top_p");
  v1::RouterGenerateRequest reserved_id = GreedyRequest({1, 5}, 4);
  reserved_id.set_request_id("router-7");
  StreamResult reserved = RunGenerate(*stub, reserved_id);
  EXPECT_EQ(reserved.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_HAS_SUBSTR(reserved.status.error_message(), "request_id");
}

// Cancel by id ends the stream with CANCELLED and frees its KV cache.
TEST_P(ClusterTest, CancelEndsTheRequest) {
  auto stub = RouterStub(cluster_);
  v1::RouterGenerateRequest request = GreedyRequest(Prompt(4, 1), 500);
  request.set_request_id("cancel-me");
  request.set_ignore_eos(true);
  StreamResult result = RunGenerate(*stub, request, absl::Seconds(60), [&] {
    grpc::ClientContext context;
    v1::CancelRequest cancel;
    cancel.set_request_id("cancel-me");
    v1::CancelResponse reply;
    EXPECT_TRUE(stub->Cancel(&context, cancel, &reply).ok());
  });
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_LT(result.tokens.size(), 500u);
  grpc::ClientContext context;
  v1::RouterStatus status;
  ASSERT_TRUE(stub->GetStatus(&context, {}, &status).ok());
  EXPECT_EQ(status.running_requests(), 0);
  EXPECT_EQ(status.kv_tokens_used(), 0);
}

// Each worker holds the experts the plan gives it, and its memory follows:
// the pages of the checkpoint it has resident are its experts' pages.
TEST_P(ClusterTest, WorkersHoldTheirShare) {
  const int64_t matrix = int64_t{spec_.hidden} * spec_.intermediate;
  for (size_t i = 0; i < cluster_.workers.size(); ++i) {
    auto stub = v1::ExpertWorker::NewStub(grpc::CreateChannel(
        cluster_.worker_addresses[i], grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    v1::WorkerDescription description;
    ASSERT_TRUE(stub->Describe(&context, {}, &description).ok());
    const int64_t held = cluster_.plan.ExpertCount(static_cast<int>(i));
    EXPECT_EQ(description.experts_size(), held);
    EXPECT_EQ(description.expert_bytes_held(), held * 3 * matrix);
    EXPECT_EQ(description.placement_version(), cluster_.plan.version);

    // Resident bytes of the checkpoint mapping, from /proc/PID/smaps.
    std::ifstream smaps(
        absl::StrCat("/proc/", cluster_.workers[i]->pid(), "/smaps"));
    std::string line;
    bool in_model = false;
    int64_t resident_kib = 0;
    while (std::getline(smaps, line)) {
      if (line.find('-') < line.find(' ') &&
          line.find(' ') != std::string::npos &&
          std::isxdigit(static_cast<unsigned char>(line[0]))) {
        in_model = line.find(".safetensors") != std::string::npos;
      } else if (in_model && line.rfind("Rss:", 0) == 0) {
        std::vector<std::string> parts =
            absl::StrSplit(line, ' ', absl::SkipEmpty());
        resident_kib += std::stoll(parts[1]);
      }
    }
    const int64_t resident = resident_kib * 1024;
    // Its experts, plus what the kernel maps around a touched page (up to
    // 64 KiB windows, which reach past both ends of an expert's tensors),
    // and the header.
    constexpr int64_t kFaultAround = 64 * 1024;
    EXPECT_GE(resident, held * 3 * matrix) << "worker " << i;
    EXPECT_LE(resident, held * (3 * matrix + 2 * kFaultAround) + kFaultAround)
        << "worker " << i;
  }
}

// Failures: a worker that stops answering or dies, with the rows sent as
// one RPC per call or over activation links (the parameter).
class ClusterFailureTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    spec_ = Fp8Spec(Architecture::kMixtral);
    StartCluster(
        spec_, UnevenPlan(spec_),
        {"--worker-timeout-ms", "1000", "--activation-link", GetParam()},
        cluster_);
  }

  GrpcExpertDispatch::Options DispatchOptions() const {
    GrpcExpertDispatch::Options options;
    options.link = *ParseActivationLinkKind(GetParam());
    return options;
  }

  TestModelSpec spec_;
  Cluster cluster_;
};

INSTANTIATE_TEST_SUITE_P(Links, ClusterFailureTest,
                         ::testing::Values("rpc", "stream"),
                         [](const auto& info) { return info.param; });

// With one copy of each expert, a stalled worker's rows have nowhere else
// to go: they fail once the call times out, naming the expert and the
// worker and why.
TEST_P(ClusterFailureTest, StalledWorkerFailsNamingItAndWhy) {
  auto stub = RouterStub(cluster_);
  v1::RouterGenerateRequest request = GreedyRequest(Prompt(8, 2), 400);
  request.set_ignore_eos(true);
  StreamResult result = RunGenerate(*stub, request, absl::Seconds(20), [&] {
    cluster_.workers[2]->Signal(SIGSTOP);
  });
  cluster_.workers[2]->Signal(SIGCONT);
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << result.status.error_message();
  EXPECT_HAS_SUBSTR(result.status.error_message(), "has no live holder");
  EXPECT_HAS_SUBSTR(result.status.error_message(), "expert worker w2");
  EXPECT_HAS_SUBSTR(result.status.error_message(), "did not answer");
  EXPECT_LT(result.elapsed, absl::Seconds(10));
  // Once it answers again, so does the cluster.
  StreamResult after = RunGenerate(*stub, GreedyRequest(Prompt(5, 3), 8));
  EXPECT_TRUE(after.status.ok()) << after.status.error_message();
}

TEST_P(ClusterFailureTest, KilledWorkerFailsItsRequestsOnly) {
  auto stub = RouterStub(cluster_);
  const StreamResult result = GenerateWhileKillingWorker(*stub, cluster_, 1);
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << result.status.error_message();
  EXPECT_HAS_SUBSTR(result.status.error_message(), "has no live holder");
  EXPECT_HAS_SUBSTR(result.status.error_message(), "expert worker w1");
  EXPECT_LT(result.elapsed, absl::Seconds(20));

  // Rows that need only the live workers are unaffected: one batch with a
  // row for an expert of w0 and a row for an expert of w1.
  auto remote = GrpcExpertDispatch::Connect(
      cluster_.plan, spec_.hidden, cluster_.Endpoints(), DispatchOptions());
  ASSERT_TRUE(remote.ok());
  int on_w0 = -1, on_w1 = -1;
  for (int e = 0; e < spec_.experts; ++e) {
    const std::vector<int>& holders = cluster_.plan.Holders(0, e);
    if (holders == std::vector<int>{0}) on_w0 = e;
    if (holders == std::vector<int>{1}) on_w1 = e;
  }
  ASSERT_GE(on_w0, 0);
  ASSERT_GE(on_w1, 0);
  std::vector<float> x(2 * spec_.hidden);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 0.01f * (i % 17) - 0.08f;
  const ExpertAssignment assignments[] = {{0, on_w0, 1.0f}, {1, on_w1, 1.0f}};
  std::vector<float> out(2 * spec_.hidden);
  std::vector<RowFailure> failures;
  ASSERT_TRUE(
      (*remote)
          ->Compute({0, x.data(), 2, assignments, {}}, out.data(), failures)
          .ok());
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_EQ(failures[0].row, 1);
  EXPECT_EQ(failures[0].status.code(), absl::StatusCode::kUnavailable);

  ThreadPool pool(1);
  auto all = ModelWeights::Load(cluster_.model_dir);
  ASSERT_TRUE(all.ok());
  LocalExpertDispatch local(**all, pool);
  std::vector<float> expected(2 * spec_.hidden);
  std::vector<RowFailure> none;
  ASSERT_TRUE(local
                  .Compute({0, x.data(), 1, {assignments, 1}, {}},
                           expected.data(), none)
                  .ok());
  for (int k = 0; k < spec_.hidden; ++k) EXPECT_EQ(out[k], expected[k]) << k;

  // A worker restarted at the same address is used again.
  cluster_.workers[1]->Wait();
  cluster_.workers[1] =
      StartWorker(cluster_, "w1", cluster_.worker_addresses[1]);
  ASSERT_TRUE(cluster_.workers[1]->AwaitAddress(kStartTimeout).ok());
  const StreamResult after =
      GenerateOnceReconnected(*stub, GreedyRequest(Prompt(5, 3), 8));
  EXPECT_TRUE(after.status.ok()) << after.status.error_message();
  // An activation link to the lost worker was opened anew.
  grpc::ClientContext context;
  v1::RouterStatus status;
  ASSERT_TRUE(stub->GetStatus(&context, {}, &status).ok());
  ASSERT_EQ(status.workers_size(), 3);
  EXPECT_EQ(status.workers(0).links_opened(), GetParam() == "rpc" ? 0 : 1);
  if (GetParam() == "rpc") {
    EXPECT_EQ(status.workers(1).links_opened(), 0);
  } else {
    EXPECT_GE(status.workers(1).links_opened(), 2);
  }
}

// A worker asked for a GPU the machine does not have refuses to start,
// naming the flag (everywhere: without CUDA, without a GPU, or past the
// last GPU).
TEST(WorkerDeviceTest, RefusesAGpuItDoesNotHave) {
  Cluster cluster;
  const TestModelSpec spec = Fp8Spec(Architecture::kMixtral);
  cluster.model_dir = testing::MakeTestModel(spec);
  cluster.plan = UnevenPlan(spec);
  cluster.plan_path = LogPrefix("plan.json");
  ASSERT_TRUE(WritePlan(cluster.plan, cluster.plan_path).ok());
  auto worker = StartWorker(cluster, "w0", "127.0.0.1:0", {"--device", "99"});
  const int status = worker->Wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status;
  EXPECT_HAS_SUBSTR(worker->Stderr(), "--device 99");
}

// The router refuses, naming the flag, a GPU it does not have for its
// forward pass, and NCCL links without its GPU.
TEST(RouterDeviceTest, RefusesWhatItCannotUse) {
  const std::string model_dir =
      testing::MakeTestModel(Fp8Spec(Architecture::kMixtral));
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--router-device", "99"}, "--router-device 99"},
      {{"--activation-link", "nccl"}, "--nccl-device"}};
  for (const auto& [flags, message] : cases) {
    std::vector<std::string> args = {SiblingBinary("moe-router"), "--model",
                                     model_dir, "--threads", "1"};
    args.insert(args.end(), flags.begin(), flags.end());
    auto router = ChildProcess::Start(args, LogPrefix("router"));
    ASSERT_TRUE(router.ok()) << router.status();
    const int status = (*router)->Wait();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status;
    EXPECT_HAS_SUBSTR((*router)->Stderr(), message);
  }
}

int GpuCount() {
#ifdef MOE_HAVE_CUDA
  return cuda::DeviceCount();
#else
  return 0;
#endif
}

// Expert workers on GPU 0 (all three share it), in each precision.
class GpuClusterTest
    : public ::testing::TestWithParam<std::tuple<Architecture, std::string>>,
      protected ClusterWithReference {
 protected:
  void SetUp() override {
    if (GpuCount() == 0)
      GTEST_SKIP() << "no CUDA device in this build or machine";
    Start(Fp8Spec(std::get<0>(GetParam())), {},
          {"--device", "0", "--expert-precision", std::get<1>(GetParam())});
  }
  bool fp8() const { return std::get<1>(GetParam()) == "fp8"; }
};

INSTANTIATE_TEST_SUITE_P(
    ArchitecturesAndPrecisions, GpuClusterTest,
    ::testing::Combine(::testing::Values(Architecture::kMixtral,
                                         Architecture::kSkyworkMoe),
                       ::testing::Values("fp8", "bf16")),
    [](const auto& info) {
      return ArchitectureName(std::get<0>(info.param)) + "_" +
             std::get<1>(info.param);
    });

// The GPU workers' logits against the CPU engine's: BF16 products round
// weights and activations to 8 mantissa bits; FP8 ones round activations
// per token to E4M3's 3 bits, a few percent per expert output.
TEST_P(GpuClusterTest, LogitsStayCloseToTheCpuEngine) {
  auto remote = GrpcExpertDispatch::Connect(cluster_.plan, spec_.hidden,
                                            cluster_.Endpoints(), {});
  ASSERT_TRUE(remote.ok()) << remote.status();
  ASSERT_TRUE((*remote)->AwaitWorkers(kStartTimeout).ok());
  CpuModelRunner distributed(*weights_, **remote, pool_);
  const double error = LogitsError(*embedded_, distributed, Prompt(24, 4),
                                   LogitsFor::kAllTokens);
  EXPECT_LE(error, fp8() ? 1e-1 : 2e-2);
  EXPECT_GT(error, 0.0);  // the GPU did compute them
}

// The whole cluster on the GPU: the router's forward pass on GPU 0 (BF16
// products and KV cache) with the GPU workers' experts, against the CPU
// engine.
TEST_P(GpuClusterTest, RouterOnTheGpuStaysCloseToTheCpuEngine) {
  auto remote = GrpcExpertDispatch::Connect(cluster_.plan, spec_.hidden,
                                            cluster_.Endpoints(), {});
  ASSERT_TRUE(remote.ok()) << remote.status();
  ASSERT_TRUE((*remote)->AwaitWorkers(kStartTimeout).ok());
  auto on_gpu = NewGpuModelRunner(*weights_, **remote, /*device=*/0);
  ASSERT_TRUE(on_gpu.ok()) << on_gpu.status();
  const double error =
      LogitsError(*embedded_, **on_gpu, Prompt(24, 4), LogitsFor::kAllTokens);
  EXPECT_LE(error, fp8() ? 1e-1 : 5e-2);
  EXPECT_GT(error, 0.0);
}

// Greedy generation through the router with BF16 GPU experts gives the CPU
// engine's tokens.
TEST_P(GpuClusterTest, GreedyTokensMatchTheCpuEngineWithBf16) {
  if (fp8()) GTEST_SKIP() << "FP8 activations may change a near tie";
  auto stub = RouterStub(cluster_);
  for (int r = 0; r < 3; ++r) {
    const StreamResult result =
        RunGenerate(*stub, GreedyRequest(Prompt(5 + 9 * r, r), 10));
    GenerationRequest request;
    request.prompt = Prompt(5 + 9 * r, r);
    request.max_tokens = 10;
    auto expected = Generate(*embedded_, request);
    ASSERT_TRUE(expected.ok()) << expected.status();
    ASSERT_TRUE(result.status.ok()) << result.status.error_message();
    EXPECT_EQ(result.tokens, expected->tokens) << "request " << r;
  }
  // The workers say where they run.
  for (const WorkerEndpoint& endpoint : cluster_.Endpoints()) {
    auto worker = v1::ExpertWorker::NewStub(grpc::CreateChannel(
        endpoint.address, grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    v1::WorkerDescription description;
    ASSERT_TRUE(worker->Describe(&context, {}, &description).ok());
    EXPECT_HAS_SUBSTR(description.device(), "cuda:0");
    EXPECT_GT(description.device_memory_total_bytes(), 0);
  }
}

// The NCCL data plane between processes on two GPUs: the router's rows go
// from GPU 0 to workers on GPU 1 (NCCL refuses both ranks of a link on one
// GPU), their sizes announced over gRPC streams.
class NcclClusterTest : public ::testing::Test, protected ClusterWithReference {
 protected:
  const std::vector<std::string> kWorkerFlags = {"--device", "1",
                                                 "--expert-precision", "bf16"};

  void SetUp() override {
    if (GpuCount() < 2) {
      GTEST_SKIP() << "needs two GPUs: NCCL refuses both ranks of a link on "
                      "one device";
    }
    Start(Fp8Spec(Architecture::kMixtral),
          {"--activation-link", "nccl", "--nccl-device", "0",
           "--worker-timeout-ms", "5000"},
          kWorkerFlags);
  }

  std::vector<int32_t> Expected(const GenerationRequest& request) {
    auto expected = Generate(*embedded_, request);
    EXPECT_TRUE(expected.ok()) << expected.status();
    return expected.ok() ? expected->tokens : std::vector<int32_t>{};
  }
};

TEST_F(NcclClusterTest, GreedyTokensMatchTheCpuEngine) {
  auto stub = RouterStub(cluster_);
  for (int r = 0; r < 3; ++r) {
    GenerationRequest request;
    request.prompt = Prompt(5 + 9 * r, r);
    request.max_tokens = 10;
    const StreamResult result =
        RunGenerate(*stub, GreedyRequest(request.prompt, 10));
    ASSERT_TRUE(result.status.ok()) << result.status.error_message();
    EXPECT_EQ(result.tokens, Expected(request)) << "request " << r;
  }
  grpc::ClientContext context;
  v1::RouterStatus status;
  ASSERT_TRUE(stub->GetStatus(&context, {}, &status).ok());
  for (const auto& worker : status.workers()) {
    EXPECT_EQ(worker.links_opened(), 1) << worker.worker_id();
  }
}

// A killed worker's stream ends, which fails its requests at once (NCCL
// alone would wait for it); restarted, it gets a new NCCL link.
TEST_F(NcclClusterTest, KilledWorkerFailsAtOnceAndARestartedOneIsUsedAgain) {
  auto stub = RouterStub(cluster_);
  const StreamResult result = GenerateWhileKillingWorker(*stub, cluster_, 1);
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << result.status.error_message();
  EXPECT_HAS_SUBSTR(result.status.error_message(), "expert worker w1");
  EXPECT_LT(result.elapsed, absl::Seconds(5));  // the reply timeout

  cluster_.workers[1]->Wait();
  cluster_.workers[1] =
      StartWorker(cluster_, "w1", cluster_.worker_addresses[1], kWorkerFlags);
  ASSERT_TRUE(cluster_.workers[1]->AwaitAddress(kStartTimeout).ok());
  GenerationRequest again;
  again.prompt = Prompt(5, 3);
  again.max_tokens = 8;
  const StreamResult after =
      GenerateOnceReconnected(*stub, GreedyRequest(again.prompt, 8));
  ASSERT_TRUE(after.status.ok()) << after.status.error_message();
  EXPECT_EQ(after.tokens, Expected(again));
  grpc::ClientContext context;
  v1::RouterStatus status;
  ASSERT_TRUE(stub->GetStatus(&context, {}, &status).ok());
  ASSERT_EQ(status.workers_size(), 3);
  EXPECT_GE(status.workers(1).links_opened(), 2);
}

}  // namespace
}  // namespace moe

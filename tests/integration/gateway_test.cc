// moe-gateway as a real process in front of real moe-router processes on
// 127.0.0.1: text streaming, stop strings, seeds, usage, validation,
// admission limits, cancellation, health and reflection; and, with the demo
// model, a router with two expert workers behind the gateway.
#include <signal.h>

#include <filesystem>
#include <functional>
#include <future>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "core/model/model_config.h"
#include "core/placement/placement_planner.h"
#include "core/util/file_util.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/support/byte_buffer.h"
#include "gtest/gtest.h"
#include "moe/v1/inference.grpc.pb.h"
#include "moe/v1/router.grpc.pb.h"
#include "tests/support/child_process.h"
#include "tests/support/expect_has_substr.h"
#include "tests/support/http_get.h"
#include "tests/support/metric_sum.h"
#include "tests/support/raw_grpc.h"
#include "tests/support/test_cluster.h"
#include "tests/support/test_models.h"

namespace moe {
namespace {

using testing::ChildProcess;

const std::string kDemoModel =
    std::string(MOE_MODELS_DIR) + "/smollm2-moe-16x-fp8";
const absl::Duration kStartTimeout = absl::Seconds(60);

struct Service {
  std::unique_ptr<ChildProcess> process;
  std::string address;
};

// Starts a binary of the build and waits for its address; fails the test
// (quoting its stderr) when it does not come up.
Service Start(const std::string& binary, const std::vector<std::string>& flags,
              const std::string& log_name) {
  std::vector<std::string> args = {testing::SiblingBinary(binary)};
  args.insert(args.end(), flags.begin(), flags.end());
  Service service;
  auto process = ChildProcess::Start(
      args, absl::StrCat(::testing::TempDir(), "/gateway_test_", log_name));
  EXPECT_TRUE(process.ok()) << process.status();
  if (!process.ok()) return service;
  service.process = std::move(*process);
  absl::StatusOr<std::string> address =
      service.process->AwaitAddress(kStartTimeout);
  EXPECT_TRUE(address.ok()) << address.status();
  if (address.ok()) service.address = *address;
  return service;
}

std::shared_ptr<grpc::Channel> Channel(const std::string& address) {
  return grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
}

struct StreamResult {
  grpc::Status status;
  std::string text;
  std::vector<int32_t> token_ids;
  std::set<std::string> request_ids;
  int finals = 0;  // responses with a finish reason
  v1::GenerateResponse last;
  absl::Duration elapsed;
};

// Runs one Generate call to its end; `prepare` runs on the call's context
// before it starts (metadata), `on_first` after the first response.
StreamResult RunGenerate(
    v1::Inference::Stub& stub, const v1::GenerateRequest& request,
    absl::Duration deadline = absl::Seconds(60),
    const std::function<void(grpc::ClientContext&)>& on_first = nullptr,
    const std::function<void(grpc::ClientContext&)>& prepare = nullptr) {
  StreamResult result;
  grpc::ClientContext context;
  const absl::Time start = absl::Now();
  context.set_deadline(absl::ToChronoTime(start + deadline));
  if (prepare) prepare(context);
  auto reader = stub.Generate(&context, request);
  v1::GenerateResponse response;
  bool first = true;
  while (reader->Read(&response)) {
    if (first && on_first) on_first(context);
    first = false;
    result.text += response.text();
    result.token_ids.insert(result.token_ids.end(),
                            response.token_ids().begin(),
                            response.token_ids().end());
    result.request_ids.insert(response.request_id());
    if (response.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
      ++result.finals;
    }
    result.last = response;
  }
  result.status = reader->Finish();
  result.elapsed = absl::Now() - start;
  return result;
}

v1::GenerateRequest TextRequest(const std::string& text, int max_tokens) {
  v1::GenerateRequest request;
  request.set_text(text);
  request.set_max_tokens(max_tokens);
  request.set_ignore_eos(true);
  return request;
}

v1::GenerateRequest Greedy(const std::string& text, int max_tokens) {
  v1::GenerateRequest request = TextRequest(text, max_tokens);
  request.set_temperature(0);
  return request;
}

// One request and one response on a bidirectional stream, by method name.
class RawBidiExchange
    : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  grpc::Status Run(const std::string& address, const std::string& method,
                   const std::string& request_bytes, std::string& response) {
    grpc::GenericStub stub(Channel(address));
    context_.set_deadline(std::chrono::system_clock::now() +
                          std::chrono::seconds(10));
    grpc::Slice slice(request_bytes);
    request_ = grpc::ByteBuffer(&slice, 1);
    stub.PrepareBidiStreamingCall(&context_, method, grpc::StubOptions(), this);
    StartWriteLast(&request_, grpc::WriteOptions());
    StartRead(&response_);
    StartCall();
    const grpc::Status status = done_.get_future().get();
    std::vector<grpc::Slice> slices;
    if (read_ && response_.Dump(&slices).ok()) {
      for (const grpc::Slice& s : slices) {
        response.append(reinterpret_cast<const char*>(s.begin()), s.size());
      }
    }
    return status;
  }
  void OnReadDone(bool ok) override { read_ = ok; }
  void OnDone(const grpc::Status& status) override { done_.set_value(status); }

 private:
  grpc::ClientContext context_;
  grpc::ByteBuffer request_, response_;
  bool read_ = false;
  std::promise<grpc::Status> done_;
};

// Two routers on a small random model and one gateway in front of both,
// shared by the tests of the suite.
class GatewayTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // Large enough that a long generation lasts a while on one thread.
    testing::TestModelSpec spec;
    spec.hidden = 256;
    spec.intermediate = 1024;
    spec.layers = 4;
    model_dir_ = new std::string(testing::MakeTestModel(spec));
    routers_ = new std::vector<Service>;
    for (int i = 0; i < 2; ++i) {
      routers_->push_back(Start(
          "moe-router",
          {"--model", *model_dir_, "--threads", "1", "--listen", "127.0.0.1:0"},
          absl::StrCat("router", i)));
    }
    gateway_ = new Service(
        Start("moe-gateway",
              {"--model", *model_dir_, "--routers", RoutersFlag(), "--listen",
               "127.0.0.1:0", "--max-in-flight", "8", "--max-queued", "8"},
              "gateway"));
  }
  static void TearDownTestSuite() {
    delete gateway_;
    delete routers_;
    delete model_dir_;
  }

  void SetUp() override {
    ASSERT_FALSE(gateway_->address.empty());
    stub_ = v1::Inference::NewStub(Channel(gateway_->address));
  }

  static std::string RoutersFlag() {
    std::vector<std::string> addresses;
    for (const Service& router : *routers_) {
      addresses.push_back(router.address);
    }
    return absl::StrJoin(addresses, ",");
  }

  static v1::RouterStatus RouterStatus(int index) {
    auto stub = v1::Router::NewStub(Channel((*routers_)[index].address));
    grpc::ClientContext context;
    v1::RouterStatus status;
    EXPECT_TRUE(stub->GetStatus(&context, {}, &status).ok());
    return status;
  }

  // Waits (at most 10 s) until no router runs a request or holds KV cache.
  static bool RoutersIdle() {
    const absl::Time give_up = absl::Now() + absl::Seconds(10);
    while (absl::Now() < give_up) {
      bool idle = true;
      for (size_t i = 0; i < routers_->size(); ++i) {
        const v1::RouterStatus status = RouterStatus(static_cast<int>(i));
        idle = idle && status.running_requests() == 0 &&
               status.queued_requests() == 0 && status.kv_tokens_used() == 0;
      }
      if (idle) return true;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return false;
  }

  static int64_t GeneratedTokens() {
    int64_t total = 0;
    for (size_t i = 0; i < routers_->size(); ++i) {
      total += RouterStatus(static_cast<int>(i)).generated_tokens();
    }
    return total;
  }

  std::vector<int32_t> Tokenize(const std::string& text, bool special) {
    grpc::ClientContext context;
    v1::TokenizeRequest request;
    request.set_text(text);
    request.set_add_special_tokens(special);
    v1::TokenizeResponse response;
    EXPECT_TRUE(stub_->Tokenize(&context, request, &response).ok());
    return {response.token_ids().begin(), response.token_ids().end()};
  }

  std::string Detokenize(const std::vector<int32_t>& ids) {
    grpc::ClientContext context;
    v1::DetokenizeRequest request;
    request.mutable_token_ids()->Add(ids.begin(), ids.end());
    v1::DetokenizeResponse response;
    const grpc::Status status = stub_->Detokenize(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.text();
  }

  static std::string* model_dir_;
  static std::vector<Service>* routers_;
  static Service* gateway_;
  std::unique_ptr<v1::Inference::Stub> stub_;
};

std::string* GatewayTest::model_dir_ = nullptr;
std::vector<Service>* GatewayTest::routers_ = nullptr;
Service* GatewayTest::gateway_ = nullptr;

TEST_F(GatewayTest, StreamedTextIsTheDetokenizationOfTheTokens) {
  const std::string prompt = "The licensee may copy";
  StreamResult result = RunGenerate(*stub_, Greedy(prompt, 40));
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  EXPECT_EQ(result.last.finish_reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(result.finals, 1);  // only the last response
  ASSERT_EQ(result.token_ids.size(), 40u);
  EXPECT_FALSE(result.text.empty());
  EXPECT_EQ(result.text, Detokenize(result.token_ids));
  // Usage: the prompt as Tokenize gives it with BOS, and every token.
  const std::vector<int32_t> prompt_ids = Tokenize(prompt, true);
  EXPECT_EQ(Tokenize(prompt, false).size() + 1, prompt_ids.size());
  EXPECT_EQ(result.last.usage().prompt_tokens(),
            static_cast<int>(prompt_ids.size()));
  EXPECT_EQ(result.last.usage().completion_tokens(), 40);
  // The gateway made one id and every response carries it.
  ASSERT_EQ(result.request_ids.size(), 1u);
  EXPECT_FALSE(result.request_ids.begin()->empty());

  // The same prompt as token ids gives the same greedy tokens.
  v1::GenerateRequest by_ids = Greedy("", 40);
  by_ids.mutable_token_ids()->mutable_ids()->Add(prompt_ids.begin(),
                                                 prompt_ids.end());
  StreamResult again = RunGenerate(*stub_, by_ids);
  ASSERT_TRUE(again.status.ok()) << again.status.error_message();
  EXPECT_EQ(again.token_ids, result.token_ids);
  EXPECT_EQ(again.text, result.text);
}

TEST_F(GatewayTest, StopStringEndsTheStreamBeforeIt) {
  const std::string prompt = "Permission is granted";
  StreamResult full = RunGenerate(*stub_, Greedy(prompt, 60));
  ASSERT_TRUE(full.status.ok()) << full.status.error_message();
  ASSERT_GE(full.text.size(), 20u) << full.text;
  // Four bytes from the middle of the text, likely across a token boundary.
  std::string stop = full.text.substr(full.text.size() / 2, 4);
  const std::string expected = full.text.substr(0, full.text.find(stop));

  v1::GenerateRequest request = Greedy(prompt, 60);
  request.add_stop("a stop string the model never writes");
  request.add_stop(stop);
  request.set_request_id("stop-test");
  StreamResult stopped = RunGenerate(*stub_, request);
  ASSERT_TRUE(stopped.status.ok()) << stopped.status.error_message();
  EXPECT_EQ(stopped.last.finish_reason(), v1::FINISH_REASON_STOP);
  EXPECT_EQ(stopped.text, expected);
  EXPECT_EQ(stopped.request_ids, std::set<std::string>{"stop-test"});
  // The tokens up to the one completing the stop string, no further.
  EXPECT_LT(stopped.token_ids.size(), full.token_ids.size());
  EXPECT_EQ(
      stopped.token_ids,
      std::vector<int32_t>(full.token_ids.begin(),
                           full.token_ids.begin() + stopped.token_ids.size()));
  EXPECT_EQ(stopped.last.usage().completion_tokens(),
            static_cast<int>(stopped.token_ids.size()));
  EXPECT_NE(Detokenize(stopped.token_ids).find(stop), std::string::npos);
  // The router call was cancelled: nothing left running.
  EXPECT_TRUE(RoutersIdle());
}

TEST_F(GatewayTest, SeedsMakeSamplingReproducible) {
  auto sample = [&](int64_t seed) {
    v1::GenerateRequest request = TextRequest("Permission is granted", 24);
    request.set_temperature(1.0f);
    request.set_seed(seed);
    StreamResult result = RunGenerate(*stub_, request);
    EXPECT_TRUE(result.status.ok()) << result.status.error_message();
    EXPECT_EQ(result.token_ids.size(), 24u);
    return result.token_ids;
  };
  const std::vector<int32_t> a = sample(5);
  EXPECT_EQ(sample(5), a);
  EXPECT_NE(sample(6), a);
}

TEST_F(GatewayTest, InvalidFieldsAreNamed) {
  struct Case {
    std::string field;
    std::function<void(v1::GenerateRequest&)> change;
  };
  const std::vector<Case> cases = {
      {"prompt", [](auto& r) { r.clear_prompt(); }},
      {"text", [](auto& r) { r.set_text(""); }},
      {"prompt", [](auto& r) { r.set_text(std::string(4000, 'x')); }},
      {"token_ids",
       [](auto& r) { r.mutable_token_ids()->mutable_ids()->Add(100000); }},
      {"max_tokens", [](auto& r) { r.set_max_tokens(0); }},
      {"max_tokens", [](auto& r) { r.set_max_tokens(510); }},
      {"temperature", [](auto& r) { r.set_temperature(-1); }},
      {"temperature", [](auto& r) { r.set_temperature(std::nanf("")); }},
      {"top_p", [](auto& r) { r.set_top_p(0); }},
      {"top_p", [](auto& r) { r.set_top_p(1.5f); }},
      {"top_k", [](auto& r) { r.set_top_k(-2); }},
      {"stop", [](auto& r) { r.add_stop(""); }},
      {"stop", [](auto& r) { r.add_stop(std::string(300, 's')); }},
      {"stop",
       [](auto& r) {
         for (int i = 0; i < 9; ++i) r.add_stop(absl::StrCat("s", i));
       }},
      {"request_id", [](auto& r) { r.set_request_id(std::string(200, 'i')); }},
      // Reserved by the router: its error passes through.
      {"request_id", [](auto& r) { r.set_request_id("router-1"); }},
  };
  for (const Case& c : cases) {
    v1::GenerateRequest request = Greedy("Permission is granted", 4);
    c.change(request);
    StreamResult result = RunGenerate(*stub_, request);
    EXPECT_EQ(result.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << c.field << ": " << result.status.error_message();
    EXPECT_HAS_SUBSTR(result.status.error_message(), c.field);
    EXPECT_TRUE(result.token_ids.empty());
  }

  grpc::ClientContext context;
  v1::DetokenizeRequest detokenize;
  detokenize.add_token_ids(-1);
  v1::DetokenizeResponse text;
  const grpc::Status status = stub_->Detokenize(&context, detokenize, &text);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_HAS_SUBSTR(status.error_message(), "token_ids");
  // The gateway still serves.
  EXPECT_TRUE(RunGenerate(*stub_, Greedy("Permission", 2)).status.ok());
}

TEST_F(GatewayTest, ClientCancelFreesTheRouter) {
  ASSERT_TRUE(RoutersIdle());
  const int64_t before = GeneratedTokens();
  constexpr int kMaxTokens = 480;
  StreamResult result =
      RunGenerate(*stub_, TextRequest("Permission is granted", kMaxTokens),
                  absl::Seconds(60),
                  [](grpc::ClientContext& context) { context.TryCancel(); });
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(RoutersIdle());
  // The router stopped early rather than running to max_tokens.
  EXPECT_LT(GeneratedTokens() - before, kMaxTokens);
}

TEST_F(GatewayTest, DeadlineIsPassedToTheRouter) {
  ASSERT_TRUE(RoutersIdle());
  StreamResult result =
      RunGenerate(*stub_, TextRequest("Permission is granted", 480),
                  absl::Milliseconds(50));
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_TRUE(RoutersIdle());
}

TEST_F(GatewayTest, OperatorCancelEndsWithFinishReasonCancelled) {
  v1::GenerateRequest request = TextRequest("Permission is granted", 480);
  request.set_request_id("operator-cancel");
  StreamResult result =
      RunGenerate(*stub_, request, absl::Seconds(60), [](grpc::ClientContext&) {
        int cancelled = 0;
        for (size_t i = 0; i < routers_->size(); ++i) {
          auto router = v1::Router::NewStub(Channel((*routers_)[i].address));
          grpc::ClientContext context;
          v1::CancelRequest cancel;
          cancel.set_request_id("operator-cancel");
          v1::CancelResponse reply;
          cancelled += router->Cancel(&context, cancel, &reply).ok();
        }
        EXPECT_EQ(cancelled, 1);  // on the router that runs it
      });
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  EXPECT_EQ(result.last.finish_reason(), v1::FINISH_REASON_CANCELLED);
  EXPECT_LT(result.token_ids.size(), 480u);
  EXPECT_EQ(result.last.usage().completion_tokens(),
            static_cast<int>(result.token_ids.size()));
  EXPECT_EQ(result.text, Detokenize(result.token_ids));
}

TEST_F(GatewayTest, RequestsSpreadOverTheRouters) {
  std::vector<int64_t> before;
  for (int i = 0; i < 2; ++i) before.push_back(RouterStatus(i).steps());
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&] {
      auto stub = v1::Inference::NewStub(Channel(gateway_->address));
      EXPECT_TRUE(
          RunGenerate(*stub, Greedy("Permission is granted", 64)).status.ok());
    });
  }
  for (std::thread& client : clients) client.join();
  for (int i = 0; i < 2; ++i) {
    EXPECT_GT(RouterStatus(i).steps(), before[i]) << "router " << i;
  }
}

TEST_F(GatewayTest, OverloadIsRefusedAtOnce) {
  Service small = Start("moe-gateway",
                        {"--model", *model_dir_, "--routers", RoutersFlag(),
                         "--max-in-flight", "1", "--max-queued", "1"},
                        "small_gateway");
  ASSERT_FALSE(small.address.empty());
  auto stub = v1::Inference::NewStub(Channel(small.address));
  ASSERT_TRUE(RunGenerate(*stub, Greedy("Permission", 2)).status.ok());

  // With the routers stopped, one request runs (waiting on its router) and
  // one waits for its slot.
  for (Service& router : *routers_) router.process->Signal(SIGSTOP);
  std::vector<StreamResult> held(2);
  std::vector<std::thread> clients;
  for (int i = 0; i < 2; ++i) {
    clients.emplace_back([&, i] {
      held[i] = RunGenerate(*stub, Greedy("Permission is granted", 8));
    });
    absl::SleepFor(absl::Milliseconds(300));
  }
  StreamResult refused = RunGenerate(*stub, Greedy("Permission", 8));
  for (Service& router : *routers_) router.process->Signal(SIGCONT);
  for (std::thread& client : clients) client.join();

  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << refused.status.error_message();
  EXPECT_HAS_SUBSTR(refused.status.error_message(), "--max-queued 1");
  EXPECT_LT(refused.elapsed, absl::Seconds(1));
  // Both held requests complete once the routers run again.
  for (const StreamResult& result : held) {
    EXPECT_TRUE(result.status.ok()) << result.status.error_message();
    EXPECT_EQ(result.token_ids.size(), 8u);
  }
}

// A request whose deadline passes while it waits for a running slot leaves
// the queue: DEADLINE_EXCEEDED at its deadline, and the queue is empty.
TEST_F(GatewayTest, AQueuedRequestLeavesAtItsDeadline) {
  Service small = Start(
      "moe-gateway",
      {"--model", *model_dir_, "--routers", RoutersFlag(), "--max-in-flight",
       "1", "--max-queued", "4", "--metrics-listen", "127.0.0.1:0"},
      "deadline_gateway");
  ASSERT_FALSE(small.address.empty());
  absl::StatusOr<std::string> metrics =
      small.process->AwaitAddress(kStartTimeout, " metrics on ");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  auto stub = v1::Inference::NewStub(Channel(small.address));
  auto queued = [&] {
    absl::StatusOr<std::string> text = testing::HttpGet(*metrics, "/metrics");
    EXPECT_TRUE(text.ok()) << text.status();
    return text.ok() ? testing::MetricSum(*text, "moe_gateway_requests_queued")
                     : -1;
  };

  // With the routers stopped, one request holds the only slot.
  for (Service& router : *routers_) router.process->Signal(SIGSTOP);
  StreamResult holder;
  std::thread client(
      [&] { holder = RunGenerate(*stub, Greedy("Permission is", 4)); });
  absl::SleepFor(absl::Milliseconds(300));
  StreamResult waiter;
  std::thread waiter_client([&] {
    waiter = RunGenerate(*stub, Greedy("Permission", 4), absl::Seconds(2));
  });
  EXPECT_TRUE(testing::Eventually([&] { return queued() == 1; },
                                  absl::Milliseconds(1500)));
  waiter_client.join();
  EXPECT_EQ(waiter.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_LT(waiter.elapsed, absl::Seconds(4));
  // The server let it go too: nothing waits any more.
  EXPECT_TRUE(
      testing::Eventually([&] { return queued() == 0; }, absl::Seconds(2)));

  for (Service& router : *routers_) router.process->Signal(SIGCONT);
  client.join();
  EXPECT_TRUE(holder.status.ok()) << holder.status.error_message();
}

TEST_F(GatewayTest, ModelInfoHealthAndReflection) {
  grpc::ClientContext context;
  v1::ModelInfo info;
  ASSERT_TRUE(stub_->GetModelInfo(&context, {}, &info).ok());
  EXPECT_EQ(info.name(), std::filesystem::path(*model_dir_).filename());
  EXPECT_EQ(info.architecture(), "mixtral");
  EXPECT_EQ(info.num_layers(), 4);
  EXPECT_EQ(info.num_experts(), 8);
  EXPECT_EQ(info.top_k(), 2);
  EXPECT_EQ(info.hidden_size(), 256);
  EXPECT_EQ(info.vocab_size(), 400);
  EXPECT_EQ(info.context_length(), 512);
  EXPECT_EQ(info.weight_dtype(), "bf16");
  EXPECT_EQ(info.placement_version(), 0);  // experts in the router
  EXPECT_EQ(info.bos_token_id(), 1);
  EXPECT_EQ(std::vector<int32_t>(info.eos_token_ids().begin(),
                                 info.eos_token_ids().end()),
            std::vector<int32_t>{2});

  EXPECT_EQ(testing::HealthStatus(gateway_->address), "SERVING");

  // ServerReflectionRequest{list_services: ""} is 3a 00; the answer lists
  // the services by name.
  std::string services;
  RawBidiExchange reflection;
  ASSERT_TRUE(reflection
                  .Run(gateway_->address,
                       "/grpc.reflection.v1alpha.ServerReflection/"
                       "ServerReflectionInfo",
                       std::string("\x3a\x00", 2), services)
                  .ok());
  EXPECT_HAS_SUBSTR(services, "moe.v1.Inference");
  EXPECT_HAS_SUBSTR(services, "grpc.health.v1.Health");
}

// A gateway with --api-keys: calls without a known key are UNAUTHENTICATED,
// and each key's limits are kept, naming the limit.
TEST_F(GatewayTest, ApiKeysAreAskedForAndTheirLimitsKept) {
  // SHA-256 of "alpha-secret" and "beta-secret" (sha256sum).
  const std::string keys = ::testing::TempDir() + "/gateway_test_api_keys";
  ASSERT_TRUE(
      WriteStringToFile(
          keys,
          "alpha "
          "3f8ad42d6dc52445378196cb2e49281f812253eaea7830fe46f4756f2ca0a3d4"
          " max_in_flight=1\n"
          "beta "
          "d40ab4efae8afe82f0fda0f0fc785ff61bec7b5f329c6070c453594397e03568"
          " tokens_per_minute=10\n")
          .ok());
  Service gateway =
      Start("moe-gateway",
            {"--model", *model_dir_, "--routers", RoutersFlag(), "--api-keys",
             keys, "--metrics-listen", "127.0.0.1:0"},
            "keyed_gateway");
  ASSERT_FALSE(gateway.address.empty());
  absl::StatusOr<std::string> metrics =
      gateway.process->AwaitAddress(kStartTimeout, " metrics on ");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  auto stub = v1::Inference::NewStub(Channel(gateway.address));
  auto with_key = [](const std::string& key) {
    return [key](grpc::ClientContext& context) {
      context.AddMetadata("authorization", "Bearer " + key);
    };
  };

  // No key, a wrong one: refused, Generate and Tokenize alike.
  EXPECT_EQ(RunGenerate(*stub, Greedy("Permission", 2)).status.error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  const StreamResult wrong =
      RunGenerate(*stub, Greedy("Permission", 2), absl::Seconds(60), nullptr,
                  with_key("gamma-secret"));
  EXPECT_EQ(wrong.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_HAS_SUBSTR(wrong.status.error_message(), "the API key is not known");
  {
    grpc::ClientContext context;
    v1::TokenizeRequest request;
    request.set_text("Permission");
    v1::TokenizeResponse response;
    EXPECT_EQ(stub->Tokenize(&context, request, &response).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }

  // alpha runs one request at a time: a second while the first streams is
  // refused.
  StreamResult second;
  const StreamResult first = RunGenerate(
      *stub, Greedy("Permission is granted", 64), absl::Seconds(60),
      [&](grpc::ClientContext&) {
        second = RunGenerate(*stub, Greedy("Permission", 2), absl::Seconds(60),
                             nullptr, with_key("alpha-secret"));
      },
      with_key("alpha-secret"));
  EXPECT_TRUE(first.status.ok()) << first.status.error_message();
  EXPECT_EQ(second.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_HAS_SUBSTR(second.status.error_message(),
                    "API key alpha runs its max_in_flight of 1");
  EXPECT_TRUE(RunGenerate(*stub, Greedy("Permission", 2), absl::Seconds(60),
                          nullptr, with_key("alpha-secret"))
                  .status.ok());

  // beta has 10 tokens a minute: one request of 8 generated tokens and its
  // prompt uses them up.
  EXPECT_TRUE(RunGenerate(*stub, Greedy("Permission is", 8), absl::Seconds(60),
                          nullptr, with_key("beta-secret"))
                  .status.ok());
  const StreamResult over =
      RunGenerate(*stub, Greedy("Permission", 2), absl::Seconds(60), nullptr,
                  with_key("beta-secret"));
  EXPECT_EQ(over.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_HAS_SUBSTR(over.status.error_message(),
                    "API key beta used its tokens_per_minute of 10");

  // Usage per key: the requests admitted and their tokens.
  absl::StatusOr<std::string> text = testing::HttpGet(*metrics, "/metrics");
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(testing::MetricSum(*text, "moe_gateway_api_key_requests_total",
                               {"key=\"alpha\""}),
            2);
  EXPECT_EQ(testing::MetricSum(*text, "moe_gateway_api_key_requests_total",
                               {"key=\"beta\""}),
            1);
  EXPECT_GE(testing::MetricSum(*text, "moe_gateway_api_key_tokens_total",
                               {"key=\"beta\""}),
            10);
  EXPECT_EQ(testing::MetricSum(*text, "moe_gateway_requests_total",
                               {"code=\"UNAUTHENTICATED\""}),
            2);
}

TEST(GatewayWithoutRouterTest, AnswersUnavailable) {
  // Port 1 on 127.0.0.1: nothing listens there.
  Service gateway =
      Start("moe-gateway",
            {"--model", testing::MakeTestModel({}), "--routers", "127.0.0.1:1"},
            "gateway_without_router");
  ASSERT_FALSE(gateway.address.empty());
  auto stub = v1::Inference::NewStub(Channel(gateway.address));
  StreamResult result =
      RunGenerate(*stub, Greedy("Permission", 4), absl::Seconds(20));
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << result.status.error_message();
  grpc::ClientContext context;
  v1::ModelInfo info;
  const grpc::Status status = stub->GetModelInfo(&context, {}, &info);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_HAS_SUBSTR(status.error_message(), "127.0.0.1:1");
  // Tokenizing needs no router.
  grpc::ClientContext tokenize_context;
  v1::TokenizeRequest tokenize;
  tokenize.set_text("Permission");
  v1::TokenizeResponse ids;
  EXPECT_TRUE(stub->Tokenize(&tokenize_context, tokenize, &ids).ok());
  EXPECT_GT(ids.token_ids_size(), 0);
}

// A router that cannot be reached is left for one that can: a request that
// failed there before its first token is sent again to the other, and new
// requests go to the reachable one.
TEST(GatewayWithDeadRouterTest, RequestsGoToTheRouterThatAnswers) {
  const std::string model = testing::MakeTestModel({});
  Service router =
      Start("moe-router",
            {"--model", model, "--threads", "1", "--listen", "127.0.0.1:0"},
            "live_router");
  ASSERT_FALSE(router.address.empty());
  // Port 1 on 127.0.0.1, where nothing listens, first: the first request
  // goes there.
  Service gateway = Start("moe-gateway",
                          {"--model", model, "--routers",
                           absl::StrCat("127.0.0.1:1,", router.address)},
                          "gateway_with_dead_router");
  ASSERT_FALSE(gateway.address.empty());
  auto stub = v1::Inference::NewStub(Channel(gateway.address));
  for (int i = 0; i < 6; ++i) {
    const StreamResult result =
        RunGenerate(*stub, Greedy("Permission", 4), absl::Seconds(20));
    EXPECT_TRUE(result.status.ok())
        << "request " << i << ": " << result.status.error_message();
    EXPECT_EQ(result.token_ids.size(), 4u) << "request " << i;
  }
}

// The demo model behind a router whose experts live on two workers with
// uneven shares. Skips when the model has not been fetched.
TEST(GatewayDemoModelTest, CompletesTheCapitalOfFrance) {
  if (!std::filesystem::exists(kDemoModel + "/model.safetensors")) {
    GTEST_SKIP() << "the demo model is missing (" << kDemoModel
                 << "): run scripts/get-demo-model.sh";
  }
  absl::StatusOr<ModelConfig> config = LoadModelConfig(kDemoModel);
  ASSERT_TRUE(config.ok()) << config.status();
  PlannerInput input;
  input.model = "smollm2-moe-16x-fp8";
  input.version = 2;
  input.num_layers = config->num_layers;
  input.num_experts = config->num_experts;
  input.expert_bytes =
      int64_t{3} * config->hidden_size * config->intermediate_size;
  const int64_t experts = int64_t{config->num_layers} * config->num_experts;
  input.workers = {{"w0", experts * 2 / 3 * input.expert_bytes, 1.0},
                   {"w1", (experts / 2) * input.expert_bytes, 1.0}};
  absl::StatusOr<PlacementPlan> plan = PlanPlacement(input);
  ASSERT_TRUE(plan.ok()) << plan.status();
  const std::string plan_path =
      absl::StrCat(::testing::TempDir(), "/gateway_test_demo_plan.json");
  ASSERT_TRUE(WritePlan(*plan, plan_path).ok());

  std::vector<Service> workers;
  std::vector<std::string> endpoints;
  for (const WorkerSpec& worker : plan->workers) {
    workers.push_back(
        Start("moe-expert-worker",
              {"--model", kDemoModel, "--plan", plan_path, "--worker-id",
               worker.id, "--listen", "127.0.0.1:0", "--threads", "1"},
              absl::StrCat("demo_", worker.id)));
    endpoints.push_back(absl::StrCat(worker.id, "=", workers.back().address));
  }
  Service router =
      Start("moe-router",
            {"--model", kDemoModel, "--plan", plan_path, "--workers",
             absl::StrJoin(endpoints, ","), "--threads", "1"},
            "demo_router");
  ASSERT_FALSE(router.address.empty());
  Service gateway =
      Start("moe-gateway", {"--model", kDemoModel, "--routers", router.address},
            "demo_gateway");
  ASSERT_FALSE(gateway.address.empty());
  auto stub = v1::Inference::NewStub(Channel(gateway.address));

  v1::GenerateRequest request;
  request.set_text("The capital of France is");
  request.set_max_tokens(8);
  request.set_temperature(0);
  StreamResult result = RunGenerate(*stub, request, absl::Seconds(300));
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  EXPECT_HAS_SUBSTR(result.text, "Paris");

  grpc::ClientContext context;
  v1::ModelInfo info;
  ASSERT_TRUE(stub->GetModelInfo(&context, {}, &info).ok());
  EXPECT_EQ(info.name(), "smollm2-moe-16x-fp8");
  EXPECT_EQ(info.architecture(), "skywork_moe");
  EXPECT_EQ(info.weight_dtype(), "fp8");
  EXPECT_EQ(info.placement_version(), 2);
  // Both workers computed experts for it.
  auto router_stub = v1::Router::NewStub(Channel(router.address));
  grpc::ClientContext status_context;
  v1::RouterStatus status;
  ASSERT_TRUE(router_stub->GetStatus(&status_context, {}, &status).ok());
  ASSERT_EQ(status.workers_size(), 2);
  for (const v1::WorkerStatus& worker : status.workers()) {
    EXPECT_GT(worker.calls(), 0) << worker.worker_id();
  }
}

}  // namespace
}  // namespace moe

// moe::client::Client against an in-process moe.v1.Inference server on
// 127.0.0.1 whose failures and timing each test chooses.
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "moe/v1/inference.grpc.pb.h"
#include "sdk/cpp/cancel_token.h"
#include "sdk/cpp/client.h"
#include "tests/support/local_server.h"

namespace moe::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class FakeInference : public v1::Inference::Service {
 public:
  // Set before the calls they affect.
  int unavailable_calls = 0;  // the first calls (of any method) fail so
  std::vector<std::string> chunks = {"Hel", "lo", " wor", "ld"};
  absl::Duration chunk_delay = absl::ZeroDuration();
  bool fail_after_first_chunk = false;
  bool skip_finish = false;

  std::atomic<int> calls{0};
  absl::Notification saw_cancellation;
  v1::GenerateRequest last_request;

  grpc::Status Generate(
      grpc::ServerContext* context, const v1::GenerateRequest* request,
      grpc::ServerWriter<v1::GenerateResponse>* writer) override {
    if (calls++ < unavailable_calls) return Unavailable();
    last_request = *request;
    for (size_t i = 0; i < chunks.size(); ++i) {
      if (!Sleep(context, chunk_delay)) {
        saw_cancellation.Notify();
        return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
      }
      v1::GenerateResponse response;
      response.set_request_id("req-1");
      response.set_text(chunks[i]);
      response.add_token_ids(static_cast<int32_t>(10 + i));
      writer->Write(response);
      if (fail_after_first_chunk) {
        return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                            "expert worker w0 failed");
      }
    }
    if (skip_finish) return grpc::Status::OK;
    v1::GenerateResponse last;
    last.set_request_id("req-1");
    last.set_finish_reason(v1::FINISH_REASON_LENGTH);
    last.mutable_usage()->set_prompt_tokens(5);
    last.mutable_usage()->set_completion_tokens(
        static_cast<int32_t>(chunks.size()));
    writer->Write(last);
    return grpc::Status::OK;
  }

  grpc::Status Tokenize(grpc::ServerContext*,
                        const v1::TokenizeRequest* request,
                        v1::TokenizeResponse* response) override {
    if (calls++ < unavailable_calls) return Unavailable();
    if (request->text().empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "text: must not be empty");
    }
    if (request->add_special_tokens()) response->add_token_ids(1);
    for (unsigned char c : request->text()) response->add_token_ids(c);
    return grpc::Status::OK;
  }

  grpc::Status Detokenize(grpc::ServerContext*,
                          const v1::DetokenizeRequest* request,
                          v1::DetokenizeResponse* response) override {
    if (calls++ < unavailable_calls) return Unavailable();
    for (int32_t id : request->token_ids()) {
      response->mutable_text()->push_back(static_cast<char>(id));
    }
    return grpc::Status::OK;
  }

  grpc::Status GetModelInfo(grpc::ServerContext*,
                            const v1::GetModelInfoRequest*,
                            v1::ModelInfo* response) override {
    if (calls++ < unavailable_calls) return Unavailable();
    response->set_name("fake");
    response->set_vocab_size(256);
    return grpc::Status::OK;
  }

 private:
  static grpc::Status Unavailable() {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "no router");
  }

  // Sleeps `duration` unless the call is cancelled first (returns false).
  static bool Sleep(grpc::ServerContext* context, absl::Duration duration) {
    const absl::Time end = absl::Now() + duration;
    while (absl::Now() < end) {
      if (context->IsCancelled()) return false;
      absl::SleepFor(absl::Milliseconds(2));
    }
    return !context->IsCancelled();
  }
};

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<testing::LocalServer>(fake_);
    ASSERT_TRUE(server_->started());
  }

  Client MakeClient(int max_retries = 3) {
    ClientOptions options;
    options.retry.max_retries = max_retries;
    options.retry.initial_backoff = absl::Milliseconds(10);
    options.retry.max_backoff = absl::Milliseconds(40);
    return Client(server_->address(), options);
  }

  FakeInference fake_;
  std::unique_ptr<testing::LocalServer> server_;
};

TEST_F(ClientTest, StreamsChunksInOrderThenTheFinishReasonAndUsage) {
  Client client = MakeClient();
  std::vector<std::string> texts;
  std::vector<v1::FinishReason> reasons;
  absl::StatusOr<GenerateResult> result =
      client.Generate(MakeGenerateRequest("Say hello", {}),
                      [&](const v1::GenerateResponse& response) {
                        texts.push_back(response.text());
                        reasons.push_back(response.finish_reason());
                        return true;
                      });
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_THAT(texts, ElementsAre("Hel", "lo", " wor", "ld", ""));
  EXPECT_EQ(reasons.back(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(reasons.front(), v1::FINISH_REASON_UNSPECIFIED);
  EXPECT_EQ(result->finish_reason, v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(result->request_id, "req-1");
  EXPECT_EQ(result->usage.prompt_tokens(), 5);
  EXPECT_EQ(result->usage.completion_tokens(), 4);
}

TEST_F(ClientTest, GenerateTextReturnsTheWholeTextAndSendsTheParameters) {
  Client client = MakeClient();
  GenerateParams params;
  params.max_tokens = 7;
  params.temperature = 0.5f;
  params.top_k = 40;
  params.seed = 1234;
  params.stop = {"\n", "a,b"};
  absl::StatusOr<Completion> completion = client.GenerateText("Hi", params);
  ASSERT_TRUE(completion.ok()) << completion.status();
  EXPECT_EQ(completion->text, "Hello world");
  EXPECT_THAT(completion->token_ids, ElementsAre(10, 11, 12, 13));
  EXPECT_EQ(completion->result.usage.completion_tokens(), 4);

  const v1::GenerateRequest& sent = fake_.last_request;
  EXPECT_EQ(sent.text(), "Hi");
  EXPECT_EQ(sent.max_tokens(), 7);
  EXPECT_FLOAT_EQ(sent.temperature(), 0.5f);
  EXPECT_FALSE(sent.has_top_p());
  EXPECT_EQ(sent.top_k(), 40);
  EXPECT_EQ(sent.seed(), 1234);
  EXPECT_THAT(sent.stop(), ElementsAre("\n", "a,b"));
}

TEST_F(ClientTest, RetriesUnavailableBeforeTheFirstToken) {
  fake_.unavailable_calls = 2;
  Client client = MakeClient(/*max_retries=*/3);
  absl::StatusOr<Completion> completion = client.GenerateText("Hi", {});
  ASSERT_TRUE(completion.ok()) << completion.status();
  EXPECT_EQ(completion->text, "Hello world");
  EXPECT_EQ(fake_.calls, 3);
}

TEST_F(ClientTest, GivesUpWhenTheRetriesRunOut) {
  fake_.unavailable_calls = 100;
  Client client = MakeClient(/*max_retries=*/2);
  absl::StatusOr<Completion> completion = client.GenerateText("Hi", {});
  EXPECT_EQ(completion.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(completion.status().message(), HasSubstr("no router"));
  EXPECT_THAT(completion.status().message(), HasSubstr("after 3 attempts"));
  EXPECT_EQ(fake_.calls, 3);
}

TEST_F(ClientTest, RetriesStopBeforeTheDeadline) {
  fake_.unavailable_calls = 1000;
  Client client = MakeClient(/*max_retries=*/1000);
  CallOptions call;
  call.timeout = absl::Milliseconds(300);
  const absl::Time start = absl::Now();
  absl::StatusOr<Completion> completion = client.GenerateText("Hi", {}, call);
  // It stops when the next backoff would pass the deadline and reports the
  // last UNAVAILABLE; an attempt started past the deadline would end with
  // DEADLINE_EXCEEDED instead. The time bound only rules out a hang: a busy
  // machine may take a little past the 300 ms.
  EXPECT_EQ(completion.status().code(), absl::StatusCode::kUnavailable)
      << completion.status();
  EXPECT_GT(fake_.calls, 2);
  EXPECT_LT(fake_.calls, 1000);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

TEST_F(ClientTest, NeverRetriesAfterATokenWasDelivered) {
  fake_.fail_after_first_chunk = true;
  Client client = MakeClient(/*max_retries=*/3);
  std::string text;
  absl::StatusOr<GenerateResult> result =
      client.Generate(MakeGenerateRequest("Hi", {}),
                      [&text](const v1::GenerateResponse& response) {
                        text += response.text();
                        return true;
                      });
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(result.status().message(), HasSubstr("expert worker w0"));
  EXPECT_EQ(text, "Hel");
  EXPECT_EQ(fake_.calls, 1);
}

TEST_F(ClientTest, PastTheDeadlineFailsWithDeadlineExceeded) {
  fake_.chunk_delay = absl::Seconds(2);
  Client client = MakeClient();
  CallOptions call;
  call.timeout = absl::Milliseconds(200);
  const absl::Time start = absl::Now();
  absl::StatusOr<Completion> completion = client.GenerateText("Hi", {}, call);
  EXPECT_EQ(completion.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  // The server sees the call end and stops generating.
  EXPECT_TRUE(
      fake_.saw_cancellation.WaitForNotificationWithTimeout(absl::Seconds(5)));
}

TEST_F(ClientTest, ACallbackReturningFalseCancelsTheStream) {
  fake_.chunks = std::vector<std::string>(50, "x");
  fake_.chunk_delay = absl::Milliseconds(20);
  Client client = MakeClient();
  int chunks = 0;
  absl::StatusOr<GenerateResult> result = client.Generate(
      MakeGenerateRequest("Hi", {}),
      [&chunks](const v1::GenerateResponse&) { return ++chunks < 2; });
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(chunks, 2);
  EXPECT_TRUE(
      fake_.saw_cancellation.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_EQ(fake_.calls, 1);
}

TEST_F(ClientTest, ACancelTokenCancelsFromAnotherThread) {
  fake_.chunks = std::vector<std::string>(100, "x");
  fake_.chunk_delay = absl::Milliseconds(50);
  Client client = MakeClient();
  CancelToken token;
  CallOptions call;
  call.cancel = &token;
  std::thread canceller([&token] {
    absl::SleepFor(absl::Milliseconds(150));
    token.Cancel();
  });
  const absl::Time start = absl::Now();
  absl::StatusOr<Completion> completion = client.GenerateText("Hi", {}, call);
  canceller.join();
  EXPECT_EQ(completion.status().code(), absl::StatusCode::kCancelled);
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_TRUE(
      fake_.saw_cancellation.WaitForNotificationWithTimeout(absl::Seconds(5)));

  // A cancelled token cancels later calls before they start.
  const int calls = fake_.calls;
  EXPECT_EQ(client.GetModelInfo(call).status().code(),
            absl::StatusCode::kCancelled);
  EXPECT_EQ(fake_.calls, calls);
}

TEST_F(ClientTest, CancellingDuringTheBackoffEndsTheRetries) {
  fake_.unavailable_calls = 1000;
  ClientOptions options;
  options.retry.max_retries = 1000;
  options.retry.initial_backoff = absl::Seconds(5);
  Client client(server_->address(), options);
  CancelToken token;
  CallOptions call;
  call.cancel = &token;
  std::thread canceller([&token] {
    absl::SleepFor(absl::Milliseconds(200));
    token.Cancel();
  });
  const absl::Time start = absl::Now();
  EXPECT_EQ(client.GetModelInfo(call).status().code(),
            absl::StatusCode::kCancelled);
  canceller.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_EQ(fake_.calls, 1);
}

TEST_F(ClientTest, AStreamWithoutAFinishReasonIsAnError) {
  fake_.skip_finish = true;
  Client client = MakeClient();
  absl::StatusOr<Completion> completion = client.GenerateText("Hi", {});
  EXPECT_EQ(completion.status().code(), absl::StatusCode::kUnknown);
  EXPECT_THAT(completion.status().message(), HasSubstr("finish reason"));
}

TEST_F(ClientTest, UnaryCallsRetryUnavailable) {
  fake_.unavailable_calls = 2;
  Client client = MakeClient();
  absl::StatusOr<v1::ModelInfo> info = client.GetModelInfo();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->name(), "fake");
  EXPECT_EQ(info->vocab_size(), 256);
  EXPECT_EQ(fake_.calls, 3);

  absl::StatusOr<std::vector<int32_t>> ids = client.Tokenize("ab", true);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_THAT(*ids, ElementsAre(1, 'a', 'b'));
  absl::StatusOr<std::string> text = client.Detokenize({'o', 'k'});
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, "ok");
}

TEST_F(ClientTest, OtherErrorsKeepTheirCodeAndMessageAndAreNotRetried) {
  Client client = MakeClient();
  absl::StatusOr<std::vector<int32_t>> ids = client.Tokenize("", false);
  EXPECT_EQ(ids.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ids.status().message(), "text: must not be empty");
  EXPECT_EQ(fake_.calls, 1);
}

TEST(ClientWithoutServerTest, AnUnreachableAddressIsUnavailable) {
  ClientOptions options;
  options.retry.max_retries = 1;
  options.retry.initial_backoff = absl::Milliseconds(10);
  // Port 1 on the loopback: nothing listens there, the connection is refused.
  Client client("127.0.0.1:1", options);
  EXPECT_EQ(client.GetModelInfo().status().code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace moe::client

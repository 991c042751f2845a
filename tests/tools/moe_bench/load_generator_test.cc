// moe-bench's load loop (RunLoad, TimeRequest) against an in-process
// moe.v1.Inference server that streams tokens at a set pace and counts the
// requests in flight.
#include <algorithm>
#include <atomic>
#include <memory>
#include <string>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "moe/v1/inference.grpc.pb.h"
#include "sdk/cpp/client.h"
#include "tests/support/local_server.h"
#include "tools/moe_bench/load_generator.h"
#include "tools/moe_bench/request_source.h"
#include "tools/moe_bench/timed_request.h"

namespace moe {
namespace {

class PacedInference : public v1::Inference::Service {
 public:
  // Set before the calls they affect.
  absl::Duration token_delay = absl::Milliseconds(20);
  int tokens_per_response = 1;
  grpc::StatusCode fail_with = grpc::StatusCode::OK;

  std::atomic<int> calls{0};
  std::atomic<int> in_flight{0};
  std::atomic<int> max_in_flight{0};

  grpc::Status Generate(
      grpc::ServerContext* context, const v1::GenerateRequest* request,
      grpc::ServerWriter<v1::GenerateResponse>* writer) override {
    ++calls;
    const int now_in_flight = ++in_flight;
    absl::Cleanup leave = [this] { --in_flight; };
    int seen = max_in_flight.load();
    while (now_in_flight > seen &&
           !max_in_flight.compare_exchange_weak(seen, now_in_flight)) {
    }
    if (fail_with != grpc::StatusCode::OK) {
      return grpc::Status(fail_with, "worker w0 failed");
    }
    for (int sent = 0; sent < request->max_tokens();) {
      absl::SleepFor(token_delay);
      if (context->IsCancelled()) {
        return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
      }
      v1::GenerateResponse response;
      for (int k = 0; k < tokens_per_response && sent < request->max_tokens();
           ++k, ++sent) {
        response.add_token_ids(100 + sent);
      }
      writer->Write(response);
    }
    v1::GenerateResponse last;
    last.set_finish_reason(v1::FINISH_REASON_LENGTH);
    last.mutable_usage()->set_prompt_tokens(request->token_ids().ids_size());
    last.mutable_usage()->set_completion_tokens(request->max_tokens());
    writer->Write(last);
    return grpc::Status::OK;
  }
};

// Seconds from the send to the last token: the first token's time plus
// every gap.
double ToLastToken(const RequestRecord& record) {
  double seconds = record.time_to_first_token.value_or(0);
  for (double gap : record.inter_token) seconds += gap;
  return seconds;
}

class LoadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<testing::LocalServer>(fake_);
    ASSERT_TRUE(server_->started());
    client::ClientOptions options;
    options.retry.max_retries = 0;
    client_ = std::make_unique<client::Client>(server_->address(), options);
  }

  static RequestSource Source(int32_t output_tokens) {
    ModelLimits limits;
    limits.vocab_size = 500;
    limits.context_length = 1000;
    return *RequestSource::Create({4, 4}, {output_tokens, output_tokens},
                                  limits, /*seed=*/1);
  }

  PacedInference fake_;
  std::unique_ptr<testing::LocalServer> server_;
  std::unique_ptr<client::Client> client_;
};

TEST_F(LoadTest, ClosedLoopKeepsConcurrencyRequestsInFlight) {
  RequestSource source = Source(6);
  LoadOptions options;
  options.concurrency = 4;
  options.max_requests = 12;
  options.warmup = 2;
  const LoadResult result = RunLoad(*client_, source, options);
  EXPECT_EQ(fake_.calls, 14);
  EXPECT_EQ(fake_.max_in_flight, 4);
  ASSERT_EQ(result.measured.size(), 12u);
  EXPECT_EQ(result.warmup_failed, 0);
  for (const RequestRecord& record : result.measured) {
    ASSERT_TRUE(record.status.ok()) << record.status;
    EXPECT_EQ(record.prompt_tokens, 4);
    EXPECT_EQ(record.output_tokens, 6);
    ASSERT_TRUE(record.time_to_first_token.has_value());
    EXPECT_GE(*record.time_to_first_token, 0.019);
    ASSERT_EQ(record.inter_token.size(), 5u);  // 6 tokens, 5 gaps
    // One gap may be short when the one before came late, but the last
    // token cannot come before the server sent it.
    EXPECT_GE(ToLastToken(record), 6 * 0.019);
    EXPECT_LE(ToLastToken(record), record.end_to_end);
  }
  // Three rounds of four requests of six 20 ms tokens each.
  EXPECT_GE(result.wall_seconds, 3 * 6 * 0.019);
  EXPECT_LT(result.wall_seconds, 5.0);
}

TEST_F(LoadTest, ResponsesOfSeveralTokensSplitTheirGap) {
  fake_.tokens_per_response = 3;
  fake_.token_delay = absl::Milliseconds(30);
  RequestSource source = Source(6);
  const RequestRecord record =
      TimeRequest(*client_, source.Next(), absl::Seconds(10));
  ASSERT_TRUE(record.status.ok()) << record.status;
  EXPECT_EQ(record.output_tokens, 6);
  ASSERT_TRUE(record.time_to_first_token.has_value());
  EXPECT_GE(*record.time_to_first_token, 0.029);
  // The second response's three tokens share its gap; the first response's
  // extra tokens have no gap of their own.
  ASSERT_EQ(record.inter_token.size(), 3u);
  EXPECT_GT(record.inter_token[0], 0);
  EXPECT_EQ(record.inter_token[0], record.inter_token[1]);
  EXPECT_EQ(record.inter_token[0], record.inter_token[2]);
  EXPECT_GE(ToLastToken(record), 2 * 0.029);
  EXPECT_LE(ToLastToken(record), record.end_to_end);
}

TEST_F(LoadTest, FailuresAreRecordedWithTheirStatusAndNotRetried) {
  fake_.fail_with = grpc::StatusCode::UNAVAILABLE;
  RequestSource source = Source(3);
  LoadOptions options;
  options.concurrency = 2;
  options.max_requests = 5;
  options.warmup = 1;
  const LoadResult result = RunLoad(*client_, source, options);
  EXPECT_EQ(fake_.calls, 6);  // no retries
  EXPECT_EQ(result.warmup_failed, 1);
  ASSERT_EQ(result.measured.size(), 5u);
  for (const RequestRecord& record : result.measured) {
    EXPECT_EQ(record.status.code(), absl::StatusCode::kUnavailable);
    EXPECT_TRUE(absl::StartsWith(record.status.message(), "worker w0 failed"))
        << record.status;
    EXPECT_FALSE(record.time_to_first_token.has_value());
  }
}

TEST_F(LoadTest, RequestsPastTheirTimeoutFailWithDeadlineExceeded) {
  RequestSource source = Source(20);  // 400 ms
  LoadOptions options;
  options.max_requests = 1;
  options.request_timeout = absl::Milliseconds(100);
  const LoadResult result = RunLoad(*client_, source, options);
  ASSERT_EQ(result.measured.size(), 1u);
  EXPECT_EQ(result.measured[0].status.code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_LT(result.wall_seconds, 0.39);
}

TEST_F(LoadTest, OpenLoopRespectsTheConcurrencyCap) {
  RequestSource source = Source(3);  // 60 ms each
  LoadOptions options;
  options.rate = 200;  // far faster than two slots serve
  options.concurrency = 2;
  options.max_requests = 10;
  const LoadResult result = RunLoad(*client_, source, options);
  EXPECT_EQ(fake_.calls, 10);
  EXPECT_EQ(fake_.max_in_flight, 2);
  ASSERT_EQ(result.measured.size(), 10u);
  for (const RequestRecord& record : result.measured) {
    EXPECT_TRUE(record.status.ok()) << record.status;
    // Measured from the send, not the arrival: the queue is not in it.
    EXPECT_LT(record.end_to_end, 0.25);
  }
  EXPECT_GE(result.wall_seconds, 5 * 3 * 0.019);  // five rounds of two
}

TEST_F(LoadTest, OpenLoopSendsAtTheRateUntilTheDuration) {
  fake_.token_delay = absl::Milliseconds(1);
  RequestSource source = Source(1);
  LoadOptions options;
  options.rate = 50;
  options.concurrency = 0;  // no cap
  options.duration = absl::Seconds(1);
  const LoadResult result = RunLoad(*client_, source, options);
  // Poisson(50) arrivals in one second: the seed fixes how many.
  EXPECT_GE(result.measured.size(), 25u);
  EXPECT_LE(result.measured.size(), 80u);
  EXPECT_EQ(fake_.calls, static_cast<int>(result.measured.size()));
  EXPECT_GE(result.wall_seconds, 0.5);
  EXPECT_LT(result.wall_seconds, 2.0);
}

TEST_F(LoadTest, ClosedLoopStopsIssuingAtTheDuration) {
  RequestSource source = Source(3);  // 60 ms each
  LoadOptions options;
  options.concurrency = 2;
  options.duration = absl::Milliseconds(300);
  const LoadResult result = RunLoad(*client_, source, options);
  // About five rounds of two; in-flight ones end after the duration.
  EXPECT_GE(result.measured.size(), 4u);
  EXPECT_LE(result.measured.size(), 12u);
  EXPECT_GE(result.wall_seconds, 0.3);
  EXPECT_LT(result.wall_seconds, 1.0);
}

}  // namespace
}  // namespace moe

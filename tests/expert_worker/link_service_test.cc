// The worker's ExpertLink service on a real gRPC server, with in-memory
// pipes in place of NCCL: a Stream call that names a link the worker joined
// is served over that link's pipe; an unknown, overdue or CPU-side link is
// refused with an error naming it; a join stops when the router gives up.
#include "expert_worker/link_service.h"

#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "absl/time/clock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "link/grpc_message_link.h"
#include "tests/support/expect_has_substr.h"
#include "tests/support/fake_payload_pipe.h"
#include "tests/support/test_models.h"

namespace moe::testing {
namespace {

// A worker (all experts of a test model on the CPU) whose NCCL joins hand
// out FakePipes, on a gRPC server at 127.0.0.1.
class LinkServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { Serve(JoinFakePipes()); }

  ExpertLinkService::NcclJoiner JoinFakePipes() {
    return [this](const v1::NcclLinkRequest& request, std::function<bool()>)
               -> absl::StatusOr<std::unique_ptr<PayloadPipe>> {
      std::lock_guard<std::mutex> lock(mutex_);
      auto pipe = std::make_shared<FakePipe>();
      pipes_[request.link_id()] = pipe;
      return std::make_unique<SharedPipe>(pipe);
    };
  }

  void Serve(ExpertLinkService::NcclJoiner join) {
    std::set<ExpertKey> all;
    for (int layer = 0; layer < spec_.layers; ++layer) {
      for (int expert = 0; expert < spec_.experts; ++expert) {
        all.insert({layer, expert});
      }
    }
    auto store = ExpertStore::Open(MakeTestModel(spec_), all, *cpu_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    queue_ = std::make_unique<ComputeQueue>(*store_, 16);
    service_ = std::make_unique<ExpertLinkService>(
        WorkerIdentity{"w0", "cpu", 0, "test"}, store_->config(), *queue_,
        std::move(join));
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = v1::ExpertLink::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (server_) server_->Shutdown(absl::ToChronoTime(absl::Now()));
  }

  grpc::Status OpenNccl(const std::string& link_id, int64_t timeout_ms,
                        absl::Duration deadline = absl::Seconds(30)) {
    v1::NcclLinkRequest request;
    request.set_link_id(link_id);
    request.set_connect_timeout_ms(timeout_ms);
    v1::NcclLinkReply reply;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    return stub_->OpenNccl(&context, request, &reply);
  }

  // The status of a Stream call naming `link_id` that the worker ended.
  grpc::Status RefusedStream(const std::string& link_id) {
    grpc::ClientContext context;
    context.AddMetadata(kNcclLinkIdKey, link_id);
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    return stub_->Stream(&context)->Finish();
  }

  std::shared_ptr<FakePipe> PipeOf(const std::string& link_id) {
    std::lock_guard<std::mutex> lock(mutex_);
    return pipes_[link_id];
  }

  const TestModelSpec spec_;
  ThreadPool pool_{1};
  std::unique_ptr<ExpertCompute> cpu_ = NewCpuExpertCompute(pool_);
  std::unique_ptr<ExpertStore> store_;
  std::unique_ptr<ComputeQueue> queue_;
  std::unique_ptr<ExpertLinkService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::ExpertLink::Stub> stub_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<FakePipe>> pipes_;  // by link id
};

// The router's side plays by hand: the payload onto the worker's pipe, its
// announcement on the stream; the worker's answer comes back the same way.
TEST_F(LinkServiceTest, AStreamIsServedOverThePipeItsLinkJoined) {
  ASSERT_TRUE(OpenNccl("link-a", 10000).ok());
  ASSERT_TRUE(OpenNccl("link-b", 10000).ok());
  std::unique_ptr<MessageLink> announcements =
      OpenGrpcStreamLink(*stub_, "link-b");
  const std::string garbage = "not a request";
  PipeOf("link-b")->Deliver(garbage);
  ASSERT_TRUE(announcements->Send(Announcement(garbage.size())).ok());

  absl::StatusOr<std::string> answer =
      announcements->Receive(absl::Now() + absl::Seconds(30));
  ASSERT_TRUE(answer.ok()) << answer.status();
  const std::vector<std::string> replies = PipeOf("link-b")->Sent();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(*answer, Announcement(replies[0].size()));
  v1::LinkReply reply;
  ASSERT_TRUE(reply.ParseFromString(replies[0]));
  EXPECT_NE(reply.status_code(), 0);
  EXPECT_HAS_SUBSTR(reply.status_message(), "LinkRequest");
  EXPECT_EQ(PipeOf("link-b")->Asked(), std::vector<size_t>{garbage.size()});
  EXPECT_TRUE(PipeOf("link-a")->Asked().empty());  // the other link's

  // The stream's end ends the link, and its pipe with it.
  announcements.reset();
  for (int i = 0; i < 100 && !PipeOf("link-b")->closed(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(PipeOf("link-b")->closed());
  EXPECT_FALSE(PipeOf("link-a")->closed());
}

// An announced payload that never comes (the router died mid-transfer) is
// not waited for past the stream's end.
TEST_F(LinkServiceTest, TheStreamsEndEndsAPayloadWait) {
  ASSERT_TRUE(OpenNccl("link-a", /*timeout_ms=*/60000).ok());
  std::unique_ptr<MessageLink> announcements =
      OpenGrpcStreamLink(*stub_, "link-a");
  ASSERT_TRUE(announcements->Send(Announcement(5)).ok());
  for (int i = 0; i < 100 && PipeOf("link-a")->Asked().empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(PipeOf("link-a")->Asked(), std::vector<size_t>{5});
  const absl::Time ended = absl::Now();
  announcements.reset();
  while (!PipeOf("link-a")->closed() &&
         absl::Now() - ended < absl::Seconds(30)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(PipeOf("link-a")->closed());
  EXPECT_LT(absl::Now() - ended, absl::Seconds(10));  // not the 60 s timeout
}

TEST_F(LinkServiceTest, AStreamForAnUnknownLinkIsRefused) {
  const grpc::Status status = RefusedStream("link-x");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_HAS_SUBSTR(status.error_message(), "no NCCL link joined as link-x");
}

// A pipe whose stream did not come within the join timeout is dropped (and
// closed) at the next OpenNccl or Stream, and its stream refused.
TEST_F(LinkServiceTest, APipeWhoseStreamNeverCameIsDropped) {
  ASSERT_TRUE(OpenNccl("link-late", 50).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ASSERT_TRUE(OpenNccl("link-next", 10000).ok());
  EXPECT_TRUE(PipeOf("link-late")->closed());
  EXPECT_FALSE(PipeOf("link-next")->closed());
  EXPECT_EQ(RefusedStream("link-late").error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(LinkServiceTest, OpenNcclNeedsALinkId) {
  const grpc::Status status = OpenNccl("", 1000);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_HAS_SUBSTR(status.error_message(), "link_id");
}

// A worker on the CPU has no joiner: it refuses, saying why.
TEST_F(LinkServiceTest, AWorkerOnTheCpuRefusesNccl) {
  TearDown();
  Serve(nullptr);
  const grpc::Status status = OpenNccl("link-a", 1000);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_HAS_SUBSTR(status.error_message(), "computes on the CPU");
}

// A router whose OpenNccl call ends (here, at its deadline) has given up:
// the worker's join is told to stop.
TEST_F(LinkServiceTest, AJoinStopsWhenTheRouterGivesUp) {
  std::promise<bool> told;
  TearDown();
  Serve([&told](const v1::NcclLinkRequest&, std::function<bool()> abandoned)
            -> absl::StatusOr<std::unique_ptr<PayloadPipe>> {
    const absl::Time give_up = absl::Now() + absl::Seconds(20);
    while (!abandoned() && absl::Now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    told.set_value(abandoned());
    return absl::UnavailableError("the router gave up");
  });
  const grpc::Status status =
      OpenNccl("link-a", 60000, /*deadline=*/absl::Milliseconds(200));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  std::future<bool> result = told.get_future();
  ASSERT_EQ(result.wait_for(std::chrono::seconds(30)),
            std::future_status::ready);
  EXPECT_TRUE(result.get());
}

}  // namespace
}  // namespace moe::testing

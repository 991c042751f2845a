// The router's end of an activation link: replies are matched to calls in
// order, a worker's error fails only its call, and a broken or overdue link
// fails every call in flight on it and is opened again at the next call.
#include "link/worker_link.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>

#include "tests/support/expect_has_substr.h"
#include "tests/support/fake_message_link.h"

namespace moe::testing {
namespace {

// The requests a fake worker received.
std::vector<v1::LinkRequest> Requests(FakeLink& link) {
  std::vector<v1::LinkRequest> requests;
  for (const std::string& message : link.Sent()) {
    EXPECT_TRUE(requests.emplace_back().ParseFromString(message));
  }
  return requests;
}

void Reply(FakeLink& link, const v1::LinkReply& reply) {
  link.Deliver(reply.SerializeAsString());
}

// A WorkerLink whose opener hands out FakeLinks.
class WorkerLinkTest : public ::testing::Test {
 protected:
  std::unique_ptr<WorkerLink> MakeLink(absl::Duration reply_timeout) {
    return std::make_unique<WorkerLink>(
        [this]() -> absl::StatusOr<std::unique_ptr<MessageLink>> {
          auto link = std::make_shared<FakeLink>();
          std::lock_guard<std::mutex> lock(mutex_);
          links_.push_back(link);
          return std::make_unique<SharedLink>(link);
        },
        reply_timeout);
  }
  FakeLink& LinkNumber(size_t i) {
    std::lock_guard<std::mutex> lock(mutex_);
    return *links_.at(i);
  }

  // One call of layer `layer`; its result arrives in the future.
  struct Pending {
    v1::ComputeResponse response;
    std::promise<absl::Status> status;
  };
  std::unique_ptr<Pending> Call(WorkerLink& link, int layer,
                                absl::Time deadline = absl::InfiniteFuture()) {
    auto pending = std::make_unique<Pending>();
    v1::LinkRequest request;
    request.mutable_compute()->set_layer(layer);
    Pending* raw = pending.get();
    link.Call(request, deadline, &raw->response,
              [raw](absl::Status status) { raw->status.set_value(status); });
    return pending;
  }
  static v1::LinkReply ReplyWithWait(int64_t queue_wait_us) {
    v1::LinkReply reply;
    reply.mutable_compute()->set_queue_wait_us(queue_wait_us);
    return reply;
  }

  std::mutex mutex_;
  std::vector<std::shared_ptr<FakeLink>> links_;
};

TEST_F(WorkerLinkTest, RepliesGoToTheirCallsInOrder) {
  auto link = MakeLink(absl::Seconds(30));
  std::vector<std::unique_ptr<Pending>> calls;
  for (int layer = 0; layer < 3; ++layer) calls.push_back(Call(*link, layer));
  FakeLink& fake = LinkNumber(0);
  const std::vector<v1::LinkRequest> sent = Requests(fake);
  ASSERT_EQ(sent.size(), 3u);
  for (int layer = 0; layer < 3; ++layer) {
    EXPECT_EQ(sent[layer].compute().layer(), layer);
    EXPECT_EQ(sent[layer].timeout_us(), 0);  // no deadline: no limit
  }
  for (int layer = 0; layer < 3; ++layer) Reply(fake, ReplyWithWait(layer + 7));
  for (int layer = 0; layer < 3; ++layer) {
    EXPECT_TRUE(calls[layer]->status.get_future().get().ok());
    EXPECT_EQ(calls[layer]->response.queue_wait_us(), layer + 7);
  }
  EXPECT_EQ(link->links_opened(), 1);
}

TEST_F(WorkerLinkTest, TheDeadlineTravelsAsATimeout) {
  auto link = MakeLink(absl::Seconds(30));
  auto call = Call(*link, 0, absl::Now() + absl::Seconds(5));
  const std::vector<v1::LinkRequest> sent = Requests(LinkNumber(0));
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_GT(sent[0].timeout_us(), 4'000'000);
  EXPECT_LE(sent[0].timeout_us(), 5'000'000);
  Reply(LinkNumber(0), ReplyWithWait(1));
  EXPECT_TRUE(call->status.get_future().get().ok());
}

TEST_F(WorkerLinkTest, AWorkerErrorFailsOnlyItsCall) {
  auto link = MakeLink(absl::Seconds(30));
  auto first = Call(*link, 0);
  auto second = Call(*link, 1);
  v1::LinkReply refused;
  refused.set_status_code(
      static_cast<int>(absl::StatusCode::kFailedPrecondition));
  refused.set_status_message("expert 3 of layer 0 is not held");
  Reply(LinkNumber(0), refused);
  Reply(LinkNumber(0), ReplyWithWait(2));
  const absl::Status first_status = first->status.get_future().get();
  EXPECT_EQ(first_status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(first_status.message(), "expert 3 of layer 0 is not held");
  EXPECT_TRUE(second->status.get_future().get().ok());
  EXPECT_EQ(second->response.queue_wait_us(), 2);
  EXPECT_EQ(link->links_opened(), 1);
}

TEST_F(WorkerLinkTest, ABrokenLinkFailsEveryCallInFlightAndIsOpenedAgain) {
  auto link = MakeLink(absl::Seconds(30));
  auto first = Call(*link, 0);
  auto second = Call(*link, 1);
  LinkNumber(0).Close();  // the worker died
  for (Pending* call : {first.get(), second.get()}) {
    const absl::Status status = call->status.get_future().get();
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
    EXPECT_HAS_SUBSTR(status.message(), "the activation link broke");
    EXPECT_HAS_SUBSTR(status.message(), "the peer went away");
  }
  auto third = Call(*link, 2);
  EXPECT_EQ(link->links_opened(), 2);
  ASSERT_EQ(Requests(LinkNumber(1)).size(), 1u);
  Reply(LinkNumber(1), ReplyWithWait(3));
  EXPECT_TRUE(third->status.get_future().get().ok());
  EXPECT_EQ(third->response.queue_wait_us(), 3);
}

// A link that died while nothing was in flight (the worker restarted) costs
// no call: the send fails and goes on a new link.
TEST_F(WorkerLinkTest, ALinkThatDiedIdleIsReplacedWithoutAFailure) {
  auto link = MakeLink(absl::Seconds(30));
  auto first = Call(*link, 0);
  Reply(LinkNumber(0), ReplyWithWait(1));
  EXPECT_TRUE(first->status.get_future().get().ok());
  LinkNumber(0).Close();
  auto second = Call(*link, 1);
  EXPECT_EQ(link->links_opened(), 2);
  ASSERT_EQ(Requests(LinkNumber(1)).size(), 1u);
  EXPECT_EQ(Requests(LinkNumber(1))[0].compute().layer(), 1);
  Reply(LinkNumber(1), ReplyWithWait(2));
  EXPECT_TRUE(second->status.get_future().get().ok());
  EXPECT_EQ(second->response.queue_wait_us(), 2);
}

TEST_F(WorkerLinkTest, AnOverdueReplyBreaksTheLink) {
  auto link = MakeLink(absl::Milliseconds(100));
  auto call = Call(*link, 0);
  const absl::Status status = call->status.get_future().get();
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_HAS_SUBSTR(status.message(), "no reply within 100 ms");
  EXPECT_TRUE(LinkNumber(0).closed());
  // The late reply would belong to a call nobody waits for: a new link.
  auto next = Call(*link, 1);
  EXPECT_EQ(link->links_opened(), 2);
  Reply(LinkNumber(1), ReplyWithWait(4));
  EXPECT_TRUE(next->status.get_future().get().ok());
}

TEST_F(WorkerLinkTest, ALinkThatCannotOpenFailsTheCallAtOnce) {
  WorkerLink link(
      []() -> absl::StatusOr<std::unique_ptr<MessageLink>> {
        return absl::UnavailableError("connection refused");
      },
      absl::Seconds(30));
  auto call = Call(link, 0);
  auto future = call->status.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(0)),
            std::future_status::ready);
  const absl::Status status = future.get();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_HAS_SUBSTR(status.message(), "no activation link: connection refused");
  EXPECT_EQ(link.links_opened(), 0);
}

TEST_F(WorkerLinkTest, ClosingFailsTheCallsInFlight) {
  auto link = MakeLink(absl::Seconds(30));
  auto call = Call(*link, 0);
  link.reset();
  EXPECT_EQ(call->status.get_future().get().code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace moe::testing

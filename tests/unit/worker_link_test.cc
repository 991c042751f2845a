// The router's end of an activation link: replies are matched to calls in
// order, a worker's error fails only its call, and a broken or overdue link
// fails every call in flight on it and is opened again at the next call.
#include "router_service/worker_link.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>

#include "tests/unit/expect_has_substr.h"

namespace moe::testing {
namespace {

// An in-memory link whose far end the test plays: it reads what the router
// sent and queues the worker's replies.
class FakeLink : public MessageLink {
 public:
  absl::Status Send(std::string_view message) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return absl::UnavailableError("closed");
    sent_.emplace_back(message);
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> Receive(absl::Time deadline) override {
    std::unique_lock<std::mutex> lock(mutex_);
    const bool ready =
        changed_.wait_until(lock, absl::ToChronoTime(deadline),
                            [this] { return closed_ || !replies_.empty(); });
    if (closed_) return absl::UnavailableError("the peer went away");
    if (!ready) {
      closed_ = true;
      return absl::DeadlineExceededError("no reply");
    }
    std::string reply = std::move(replies_.front());
    replies_.pop_front();
    return reply;
  }
  void Close() override {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
    changed_.notify_all();
  }

  // The worker's side.
  void Reply(const v1::LinkReply& reply) {
    std::lock_guard<std::mutex> lock(mutex_);
    replies_.push_back(reply.SerializeAsString());
    changed_.notify_all();
  }
  std::vector<v1::LinkRequest> Sent() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<v1::LinkRequest> requests(sent_.size());
    for (size_t i = 0; i < sent_.size(); ++i) {
      EXPECT_TRUE(requests[i].ParseFromString(sent_[i]));
    }
    return requests;
  }
  bool closed() {
    std::lock_guard<std::mutex> lock(mutex_);
    return closed_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> sent_;
  std::deque<std::string> replies_;
  bool closed_ = false;
};

// The WorkerLink's handle on a FakeLink the test keeps too: the WorkerLink
// drops its links when they break.
class SharedLink : public MessageLink {
 public:
  explicit SharedLink(std::shared_ptr<FakeLink> link)
      : link_(std::move(link)) {}
  absl::Status Send(std::string_view message) override {
    return link_->Send(message);
  }
  absl::StatusOr<std::string> Receive(absl::Time deadline) override {
    return link_->Receive(deadline);
  }
  void Close() override { link_->Close(); }

 private:
  const std::shared_ptr<FakeLink> link_;
};

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
  const std::vector<v1::LinkRequest> sent = fake.Sent();
  ASSERT_EQ(sent.size(), 3u);
  for (int layer = 0; layer < 3; ++layer) {
    EXPECT_EQ(sent[layer].compute().layer(), layer);
    EXPECT_EQ(sent[layer].timeout_us(), 0);  // no deadline: no limit
  }
  for (int layer = 0; layer < 3; ++layer) fake.Reply(ReplyWithWait(layer + 7));
  for (int layer = 0; layer < 3; ++layer) {
    EXPECT_TRUE(calls[layer]->status.get_future().get().ok());
    EXPECT_EQ(calls[layer]->response.queue_wait_us(), layer + 7);
  }
  EXPECT_EQ(link->links_opened(), 1);
}

TEST_F(WorkerLinkTest, TheDeadlineTravelsAsATimeout) {
  auto link = MakeLink(absl::Seconds(30));
  auto call = Call(*link, 0, absl::Now() + absl::Seconds(5));
  const std::vector<v1::LinkRequest> sent = LinkNumber(0).Sent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_GT(sent[0].timeout_us(), 4'000'000);
  EXPECT_LE(sent[0].timeout_us(), 5'000'000);
  LinkNumber(0).Reply(ReplyWithWait(1));
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
  LinkNumber(0).Reply(refused);
  LinkNumber(0).Reply(ReplyWithWait(2));
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
  ASSERT_EQ(LinkNumber(1).Sent().size(), 1u);
  LinkNumber(1).Reply(ReplyWithWait(3));
  EXPECT_TRUE(third->status.get_future().get().ok());
  EXPECT_EQ(third->response.queue_wait_us(), 3);
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
  LinkNumber(1).Reply(ReplyWithWait(4));
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

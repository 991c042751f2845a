// A link whose payloads move apart from their announcements (as over NCCL):
// each message is its payload plus an 8-byte announcement of its size, a
// payload is received only once announced, and a broken or lying peer breaks
// the link with an error instead of a hang.
#include "link/announced_link.h"

#include <gtest/gtest.h>

#include <thread>

#include "absl/time/clock.h"
#include "tests/support/expect_has_substr.h"
#include "tests/support/fake_message_link.h"
#include "tests/support/fake_payload_pipe.h"

namespace moe::testing {
namespace {

struct Announced {
  explicit Announced(absl::Duration payload_timeout = absl::Seconds(30))
      : link(NewAnnouncedLink(std::make_unique<SharedLink>(announcements),
                              std::make_unique<SharedPipe>(pipe),
                              payload_timeout)) {}
  std::shared_ptr<FakeLink> announcements = std::make_shared<FakeLink>();
  std::shared_ptr<FakePipe> pipe = std::make_shared<FakePipe>();
  std::unique_ptr<MessageLink> link;
};

absl::Time Soon() { return absl::Now() + absl::Seconds(30); }

TEST(AnnouncedLinkTest, SendPutsThePayloadOnThePipeThenAnnouncesIt) {
  Announced a;
  const std::string big(70000, 'x');  // a size of three bytes
  ASSERT_TRUE(a.link->Send("request").ok());
  ASSERT_TRUE(a.link->Send(big).ok());
  ASSERT_TRUE(a.link->Send("").ok());
  EXPECT_EQ(a.pipe->Sent(), (std::vector<std::string>{"request", big}));
  EXPECT_EQ(a.announcements->Sent(),
            (std::vector<std::string>{Announcement(7), Announcement(70000),
                                      Announcement(0)}));
}

// Announcements that note how many payloads were on the pipe when each
// went out.
class OrderCheckingLink : public MessageLink {
 public:
  explicit OrderCheckingLink(std::shared_ptr<FakePipe> pipe)
      : pipe_(std::move(pipe)) {}
  absl::Status Send(std::string_view) override {
    payloads_before_.push_back(pipe_->Sent().size());
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> Receive(absl::Time) override {
    return absl::UnavailableError("unused");
  }
  void Close() override {}
  std::vector<size_t> payloads_before_;

 private:
  const std::shared_ptr<FakePipe> pipe_;
};

TEST(AnnouncedLinkTest, EachAnnouncementComesAfterItsPayload) {
  auto pipe = std::make_shared<FakePipe>();
  auto announcements = std::make_unique<OrderCheckingLink>(pipe);
  OrderCheckingLink* checked = announcements.get();
  auto link =
      NewAnnouncedLink(std::move(announcements),
                       std::make_unique<SharedPipe>(pipe), absl::Seconds(30));
  ASSERT_TRUE(link->Send("one").ok());
  ASSERT_TRUE(link->Send("two").ok());
  EXPECT_EQ(checked->payloads_before_, (std::vector<size_t>{1, 2}));
}

TEST(AnnouncedLinkTest, ReceiveTakesTheAnnouncedPayload) {
  Announced a;
  a.pipe->Deliver("reply");
  a.announcements->Deliver(Announcement(5));
  a.announcements->Deliver(Announcement(0));
  absl::StatusOr<std::string> first = a.link->Receive(Soon());
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, "reply");
  absl::StatusOr<std::string> second = a.link->Receive(Soon());
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(*second, "");
  EXPECT_EQ(a.pipe->Asked(), (std::vector<size_t>{5, 0}));
}

// Nothing waits on the pipe for a payload nobody announced.
TEST(AnnouncedLinkTest, NoAnnouncementNoPipeReceive) {
  Announced a;
  const absl::Status status =
      a.link->Receive(absl::Now() + absl::Milliseconds(50)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(a.pipe->Asked().empty());
  EXPECT_TRUE(a.pipe->closed());  // a timed-out link is broken
}

TEST(AnnouncedLinkTest, AnEndedAnnouncementStreamFailsAWaitingReceiveAtOnce) {
  Announced a;
  std::thread peer_dies([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    a.announcements->Close();
  });
  const absl::Time start = absl::Now();
  const absl::Status status = a.link->Receive(absl::InfiniteFuture()).status();
  peer_dies.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(a.pipe->closed());
}

TEST(AnnouncedLinkTest, AnnouncedPayloadThatNeverComesBreaksTheLink) {
  Announced a(/*payload_timeout=*/absl::Milliseconds(50));
  a.announcements->Deliver(Announcement(12));
  const absl::Status status = a.link->Receive(absl::InfiniteFuture()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_HAS_SUBSTR(status.message(), "12 bytes announced");
  EXPECT_TRUE(a.pipe->closed());
  EXPECT_TRUE(a.announcements->closed());
}

TEST(AnnouncedLinkTest, BadAnnouncementsBreakTheLinkWithoutTouchingThePipe) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"short", "an announcement of 5 bytes"},
      {Announcement(kMaxAnnouncedBytes + 1), "announced 1073741825 bytes"}};
  for (const auto& [announcement, message] : cases) {
    Announced a;
    a.announcements->Deliver(announcement);
    const absl::Status status = a.link->Receive(Soon()).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
    EXPECT_HAS_SUBSTR(status.message(), message);
    EXPECT_TRUE(a.pipe->Asked().empty());
    EXPECT_TRUE(a.pipe->closed());
  }
}

// A payload the pipe refused is not announced, so the peer waits for
// nothing; the owner closes the failed link (outside any lock of its own).
TEST(AnnouncedLinkTest, AFailedPayloadIsNotAnnounced) {
  Announced a;
  a.pipe->Close();
  EXPECT_EQ(a.link->Send("request").code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(a.announcements->Sent().empty());
  EXPECT_FALSE(a.announcements->closed());
  a.link->Close();
  EXPECT_TRUE(a.announcements->closed());
}

TEST(AnnouncedLinkTest, AFailedAnnouncementFailsTheSend) {
  Announced a;
  a.announcements->Close();
  EXPECT_EQ(a.link->Send("request").code(), absl::StatusCode::kUnavailable);
}

TEST(AnnouncedLinkTest, ClosingClosesBoth) {
  Announced a;
  a.link->Close();
  EXPECT_TRUE(a.announcements->closed());
  EXPECT_TRUE(a.pipe->closed());
  EXPECT_EQ(a.link->Receive(Soon()).status().code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace moe::testing

// A link watched over a lifeline: messages pass as on the link itself; when
// the lifeline ends, a Receive waiting for the lost peer fails at once.
#include "core/lifeline_link.h"

#include <gtest/gtest.h>

#include <thread>

#include "absl/time/clock.h"
#include "tests/unit/expect_has_substr.h"
#include "tests/unit/fake_message_link.h"

namespace moe::testing {
namespace {

struct Linked {
  std::shared_ptr<FakeLink> link = std::make_shared<FakeLink>();
  std::shared_ptr<FakeLink> lifeline = std::make_shared<FakeLink>();
  std::unique_ptr<MessageLink> watched =
      WithLifeline(std::make_unique<SharedLink>(link),
                   std::make_unique<SharedLink>(lifeline));
};

TEST(LifelineLinkTest, MessagesPassWhileTheLifelineLives) {
  Linked linked;
  ASSERT_TRUE(linked.watched->Send("request").ok());
  EXPECT_EQ(linked.link->Sent(), std::vector<std::string>{"request"});
  linked.lifeline->Deliver("ignored");  // a lifeline carries nothing
  linked.link->Deliver("reply");
  absl::StatusOr<std::string> reply =
      linked.watched->Receive(absl::Now() + absl::Seconds(10));
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "reply");
  EXPECT_FALSE(linked.link->closed());
}

TEST(LifelineLinkTest, AnEndedLifelineFailsAWaitingReceiveAtOnce) {
  Linked linked;
  std::thread peer_dies([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    linked.lifeline->Close();
  });
  const absl::Time start = absl::Now();
  absl::StatusOr<std::string> reply =
      linked.watched->Receive(start + absl::Seconds(30));
  peer_dies.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_HAS_SUBSTR(reply.status().message(), "lifeline ended");
  EXPECT_TRUE(linked.link->closed());
  EXPECT_HAS_SUBSTR(linked.watched->Send("late").message(), "lifeline ended");
}

TEST(LifelineLinkTest, ClosingClosesBoth) {
  Linked linked;
  linked.watched->Close();
  EXPECT_TRUE(linked.link->closed());
  EXPECT_TRUE(linked.lifeline->closed());
  const absl::Status status =
      linked.watched->Receive(absl::Now() + absl::Seconds(10)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(status.message(), "the peer went away");  // not the lifeline's
}

}  // namespace
}  // namespace moe::testing

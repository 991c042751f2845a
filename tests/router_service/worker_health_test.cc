#include "router_service/worker_health.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "absl/time/clock.h"

namespace moe {
namespace {

// Polls `condition` for up to 10 s.
template <typename Condition>
bool Eventually(Condition condition) {
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (!condition()) {
    if (absl::Now() > give_up) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

TEST(WorkerHealthTest, ADownWorkerIsProbedUntilItServesAgain) {
  std::atomic<bool> serving{false};
  std::atomic<int> probes{0};
  WorkerHealth health(absl::Milliseconds(10));
  auto w0 = health.Watch("w0", [] { return absl::OkStatus(); });
  auto w1 = health.Watch("w1", [&] {
    ++probes;
    return serving ? absl::OkStatus() : absl::UnavailableError("refused");
  });
  auto w2 = health.Watch("w2", [] { return absl::OkStatus(); });
  EXPECT_TRUE(w0->up() && w1->up() && w2->up());

  health.MarkDown(*w1, absl::UnavailableError("connection reset"));
  EXPECT_FALSE(w1->up());
  EXPECT_TRUE(w0->up());
  EXPECT_TRUE(w2->up());
  // Refused probes keep it down.
  ASSERT_TRUE(Eventually([&] { return probes >= 3; }));
  EXPECT_FALSE(w1->up());
  EXPECT_EQ(w1->recoveries(), 0);

  serving = true;
  ASSERT_TRUE(Eventually([&] { return w1->up(); }));
  EXPECT_EQ(w1->recoveries(), 1);

  // Marking a down worker down again changes nothing.
  serving = false;
  health.MarkDown(*w1, absl::UnavailableError("again"));
  health.MarkDown(*w1, absl::UnavailableError("and again"));
  EXPECT_FALSE(w1->up());
  serving = true;
  ASSERT_TRUE(Eventually([&] { return w1->up(); }));
  EXPECT_EQ(w1->recoveries(), 2);
}

// A worker that stops answering while nothing is sent to it is found down
// by the probes of the workers that are up.
TEST(WorkerHealthTest, AnIdleWorkerThatDiesIsFoundDown) {
  std::atomic<bool> w0_serving{true};
  WorkerHealth health(absl::Milliseconds(10));
  auto w0 = health.Watch("w0", [&] {
    return w0_serving ? absl::OkStatus() : absl::UnavailableError("refused");
  });
  auto w1 = health.Watch("w1", [] { return absl::OkStatus(); });
  std::this_thread::sleep_for(
      std::chrono::milliseconds(10 * 3 * WorkerHealth::kUpProbeRounds));
  EXPECT_TRUE(w0->up());
  w0_serving = false;
  ASSERT_TRUE(Eventually([&] { return !w0->up(); }));
  EXPECT_TRUE(w1->up());
  w0_serving = true;
  ASSERT_TRUE(Eventually([&] { return w0->up(); }));
}

// Workers join and leave while it runs: one that joined is probed, one
// that was forgotten is not any more.
TEST(WorkerHealthTest, WorkersJoinAndAreForgotten) {
  WorkerHealth health(absl::Milliseconds(10));
  std::atomic<int> early_probes{0}, late_probes{0};
  auto early = health.Watch("early", [&] {
    ++early_probes;
    return absl::UnavailableError("down");
  });
  health.MarkDown(*early, absl::UnavailableError("down"));
  ASSERT_TRUE(Eventually([&] { return early_probes > 0; }));
  auto late = health.Watch("late", [&] {
    ++late_probes;
    return absl::UnavailableError("down");
  });
  health.MarkDown(*late, absl::UnavailableError("down"));
  ASSERT_TRUE(Eventually([&] { return late_probes > 0; }));
  health.Forget(*early);
  // A probe in flight when it was forgotten may still end.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const int forgotten_at = early_probes;
  const int late_at = late_probes;
  ASSERT_TRUE(Eventually([&] { return late_probes >= late_at + 5; }));
  EXPECT_EQ(early_probes, forgotten_at);
}

// Destroying it stops the prober at once, not after its interval.
TEST(WorkerHealthTest, StopsWithoutWaitingForTheNextProbe) {
  const absl::Time start = absl::Now();
  {
    WorkerHealth health(absl::Hours(1));
    auto w0 = health.Watch("w0", [] { return absl::UnavailableError("down"); });
    health.MarkDown(*w0, absl::UnavailableError("down"));
  }
  EXPECT_LT(absl::Now() - start, absl::Minutes(1));
}

}  // namespace
}  // namespace moe

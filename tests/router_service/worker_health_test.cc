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
  WorkerHealth health(
      {"w0", "w1", "w2"},
      [&](int worker) {
        if (worker != 1) return absl::OkStatus();
        ++probes;
        return serving ? absl::OkStatus() : absl::UnavailableError("refused");
      },
      absl::Milliseconds(10));
  for (int w = 0; w < 3; ++w) EXPECT_TRUE(health.up(w));

  health.MarkDown(1, absl::UnavailableError("connection reset"));
  EXPECT_FALSE(health.up(1));
  EXPECT_TRUE(health.up(0));
  EXPECT_TRUE(health.up(2));
  // Refused probes keep it down.
  ASSERT_TRUE(Eventually([&] { return probes >= 3; }));
  EXPECT_FALSE(health.up(1));
  EXPECT_EQ(health.recoveries(1), 0);

  serving = true;
  ASSERT_TRUE(Eventually([&] { return health.up(1); }));
  EXPECT_EQ(health.recoveries(1), 1);

  // Marking a down worker down again changes nothing.
  serving = false;
  health.MarkDown(1, absl::UnavailableError("again"));
  health.MarkDown(1, absl::UnavailableError("and again"));
  EXPECT_FALSE(health.up(1));
  serving = true;
  ASSERT_TRUE(Eventually([&] { return health.up(1); }));
  EXPECT_EQ(health.recoveries(1), 2);
}

// A worker that stops answering while nothing is sent to it is found down
// by the probes of the workers that are up.
TEST(WorkerHealthTest, AnIdleWorkerThatDiesIsFoundDown) {
  std::atomic<bool> w0_serving{true};
  WorkerHealth health(
      {"w0", "w1"},
      [&](int worker) {
        return worker == 1 || w0_serving ? absl::OkStatus()
                                         : absl::UnavailableError("refused");
      },
      absl::Milliseconds(10));
  std::this_thread::sleep_for(
      std::chrono::milliseconds(10 * 3 * WorkerHealth::kUpProbeRounds));
  EXPECT_TRUE(health.up(0));
  w0_serving = false;
  ASSERT_TRUE(Eventually([&] { return !health.up(0); }));
  EXPECT_TRUE(health.up(1));
  w0_serving = true;
  ASSERT_TRUE(Eventually([&] { return health.up(0); }));
}

// Destroying it stops the prober at once, not after its interval.
TEST(WorkerHealthTest, StopsWithoutWaitingForTheNextProbe) {
  const absl::Time start = absl::Now();
  {
    WorkerHealth health(
        {"w0"}, [](int) { return absl::UnavailableError("down"); },
        absl::Hours(1));
    health.MarkDown(0, absl::UnavailableError("down"));
  }
  EXPECT_LT(absl::Now() - start, absl::Minutes(1));
}

}  // namespace
}  // namespace moe

#include "router_service/worker_health.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
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
  std::mutex mutex;
  std::set<int> probed;
  std::atomic<int> probes{0};
  WorkerHealth health(
      {"w0", "w1", "w2"},
      [&](int worker) {
        {
          std::lock_guard<std::mutex> lock(mutex);
          probed.insert(worker);
        }
        ++probes;
        return serving ? absl::OkStatus() : absl::UnavailableError("refused");
      },
      absl::Milliseconds(10));
  for (int w = 0; w < 3; ++w) EXPECT_TRUE(health.up(w));

  health.MarkDown(1, absl::UnavailableError("connection reset"));
  EXPECT_FALSE(health.up(1));
  EXPECT_TRUE(health.up(0));
  EXPECT_TRUE(health.up(2));
  // Refused probes keep it down, and only the down worker is asked.
  ASSERT_TRUE(Eventually([&] { return probes >= 3; }));
  EXPECT_FALSE(health.up(1));
  {
    std::lock_guard<std::mutex> lock(mutex);
    EXPECT_EQ(probed, std::set<int>{1});
  }
  EXPECT_EQ(health.recoveries(1), 0);

  serving = true;
  ASSERT_TRUE(Eventually([&] { return health.up(1); }));
  EXPECT_EQ(health.recoveries(1), 1);
  // Up again, it is no longer probed.
  const int after = probes;
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(probes, after);

  // Marking a down worker down again changes nothing.
  serving = false;
  health.MarkDown(1, absl::UnavailableError("again"));
  health.MarkDown(1, absl::UnavailableError("and again"));
  EXPECT_FALSE(health.up(1));
  serving = true;
  ASSERT_TRUE(Eventually([&] { return health.up(1); }));
  EXPECT_EQ(health.recoveries(1), 2);
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

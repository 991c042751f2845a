#include "router_service/load_window.h"

#include <gtest/gtest.h>

namespace moe {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1000);

// Routed tokens growing by `per_second` each second from kStart; one worker
// whose rows grow by 10 a second.
LoadCounts CountsAt(int second, const std::vector<int64_t>& per_second) {
  LoadCounts counts;
  for (int64_t rate : per_second) counts.routed_tokens.push_back(rate * second);
  counts.workers.push_back(
      {"w0", second, 10 * second, 0.5 * second, 0.25 * second, 1.0 * second});
  return counts;
}

TEST(LoadWindowTest, CountsWhatHappenedWithinTheWindow) {
  LoadWindow window(absl::Seconds(60));
  EXPECT_EQ(window.Over(absl::Seconds(10)).span, absl::ZeroDuration());
  for (int s = 0; s <= 100; ++s) {
    window.Add(kStart + absl::Seconds(s), CountsAt(s, {1, 0, 5}));
  }
  LoadWindow::Load load = window.Over(absl::Seconds(10));
  EXPECT_EQ(load.span, absl::Seconds(10));
  EXPECT_EQ(load.counts.routed_tokens, (std::vector<int64_t>{10, 0, 50}));
  ASSERT_EQ(load.counts.workers.size(), 1u);
  EXPECT_EQ(load.counts.workers[0].id, "w0");
  EXPECT_EQ(load.counts.workers[0].calls, 10);
  EXPECT_EQ(load.counts.workers[0].rows, 100);
  EXPECT_DOUBLE_EQ(load.counts.workers[0].compute_seconds, 5.0);
  EXPECT_DOUBLE_EQ(load.counts.workers[0].queue_seconds, 2.5);
  // Asked for more than it keeps: the oldest kept sample, 60 s back.
  load = window.Over(absl::Minutes(10));
  EXPECT_EQ(load.span, absl::Seconds(60));
  EXPECT_EQ(load.counts.routed_tokens, (std::vector<int64_t>{60, 0, 300}));
}

TEST(LoadWindowTest, AWorkerThatJoinedCountsFromZero) {
  LoadWindow window(absl::Seconds(60));
  window.Add(kStart, CountsAt(0, {1}));
  LoadCounts later = CountsAt(5, {1});
  later.workers.push_back({"w9", 3, 30, 1.5, 0, 2});
  window.Add(kStart + absl::Seconds(5), later);
  const LoadWindow::Load load = window.Over(absl::Seconds(5));
  ASSERT_EQ(load.counts.workers.size(), 2u);
  EXPECT_EQ(load.counts.workers[0].rows, 50);
  EXPECT_EQ(load.counts.workers[1].id, "w9");
  EXPECT_EQ(load.counts.workers[1].rows, 30);
}

}  // namespace
}  // namespace moe

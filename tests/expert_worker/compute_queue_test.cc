// The expert worker's compute queue: calls that wait for the same layer
// (from different requests or routers) are computed as one batch, and each
// gets the rows it would get alone.
#include "expert_worker/compute_queue.h"

#include <gtest/gtest.h>

#include <cmath>
#include <future>
#include <random>

#include "tests/support/test_models.h"

namespace moe::testing {
namespace {

struct Result {
  absl::Status status;
  std::vector<float> out;
  ComputeStats stats;
};

ComputeTask RandomTask(int layer, int64_t n, int hidden, int experts,
                       uint64_t seed, std::promise<Result>& result) {
  std::mt19937_64 generator(seed);
  std::normal_distribution<float> normal;
  std::uniform_int_distribution<int32_t> expert(0, experts - 1);
  ComputeTask task;
  task.layer = layer;
  task.n = n;
  task.rows.resize(n * hidden);
  for (float& x : task.rows) x = normal(generator);
  for (int32_t row = 0; row < n; ++row) {
    const int32_t first = expert(generator);
    task.assignments.push_back({row, first, 0.7f});
    task.assignments.push_back({row, (first + 1) % experts, 0.3f});
  }
  task.done = [&result](absl::Status status, std::vector<float> out,
                        ComputeStats stats) {
    result.set_value({std::move(status), std::move(out), stats});
  };
  return task;
}

TEST(ComputeQueueTest, CallsWaitingForTheSameLayerAreComputedTogether) {
  const TestModelSpec spec;
  std::set<ExpertKey> all;
  for (int layer = 0; layer < spec.layers; ++layer) {
    for (int expert = 0; expert < spec.experts; ++expert) {
      all.insert({layer, expert});
    }
  }
  ThreadPool pool(2);
  const std::unique_ptr<ExpertCompute> cpu = NewCpuExpertCompute(pool);
  auto store = ExpertStore::Open(MakeTestModel(spec), all, *cpu);
  ASSERT_TRUE(store.ok()) << store.status();
  ComputeQueue queue(**store, 16);

  // The first call holds the compute thread (its abandoned() check runs
  // there) until the others are queued behind it.
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<Result> first, b, c;
  ComputeTask blocker = RandomTask(0, 1, spec.hidden, spec.experts, 1, first);
  blocker.abandoned = [released] {
    released.wait();
    return false;
  };
  ASSERT_TRUE(queue.Submit(std::move(blocker)).ok());
  // Two calls for layer 1, as two routers would send them.
  ComputeTask task_b = RandomTask(1, 2, spec.hidden, spec.experts, 2, b);
  ComputeTask task_c = RandomTask(1, 3, spec.hidden, spec.experts, 3, c);
  const ComputeTask alone_b = task_b;
  const ComputeTask alone_c = task_c;
  ASSERT_TRUE(queue.Submit(std::move(task_b)).ok());
  ASSERT_TRUE(queue.Submit(std::move(task_c)).ok());
  release.set_value();

  ASSERT_TRUE(first.get_future().get().status.ok());
  const Result result_b = b.get_future().get();
  const Result result_c = c.get_future().get();
  ASSERT_TRUE(result_b.status.ok()) << result_b.status;
  ASSERT_TRUE(result_c.status.ok()) << result_c.status;
  EXPECT_EQ(result_b.stats.batched_calls, 2);
  EXPECT_EQ(result_c.stats.batched_calls, 2);

  // Each call's rows equal the same rows computed on their own.
  const auto weights = (*store)->Current();
  for (const auto& [task, result] :
       {std::pair{&alone_b, &result_b}, std::pair{&alone_c, &result_c}}) {
    std::vector<float> expected(task->n * spec.hidden);
    ASSERT_TRUE(ComputeExperts(weights->layers()[1], 1, task->rows.data(),
                               task->n, spec.hidden, task->assignments,
                               expected.data(), pool)
                    .ok());
    ASSERT_EQ(result->out.size(), expected.size());
    for (size_t i = 0; i < expected.size(); ++i) {
      EXPECT_NEAR(result->out[i], expected[i],
                  1e-5 * (1 + std::fabs(expected[i])))
          << "element " << i;
    }
  }
}

}  // namespace
}  // namespace moe::testing

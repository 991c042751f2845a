#include "expert_worker/expert_store.h"

#include <gtest/gtest.h>

#include "core/util/thread_pool.h"
#include "tests/support/expect_has_substr.h"
#include "tests/support/test_models.h"

namespace moe::testing {
namespace {

// A worker with room for three experts holds two, loads a third, and is
// refused a fourth, naming the bytes; what it holds stays as it was.
TEST(ExpertStoreTest, LoadingPastTheBudgetIsRefusedBeforeReading) {
  const TestModelSpec spec;  // BF16: two bytes a weight
  const int64_t expert_bytes = int64_t{3} * spec.hidden * spec.intermediate * 2;
  ThreadPool pool(1);
  const std::unique_ptr<ExpertCompute> cpu = NewCpuExpertCompute(pool);
  auto store = ExpertStore::Open(MakeTestModel(spec), {{0, 1}, {1, 2}}, *cpu,
                                 3 * expert_bytes);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->BytesHeld(), 2 * expert_bytes);

  ASSERT_TRUE((*store)->Load({{0, 5}}).ok());
  EXPECT_EQ((*store)->BytesHeld(), 3 * expert_bytes);
  const absl::Status over = (*store)->Load({{1, 0}});
  EXPECT_EQ(over.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_HAS_SUBSTR(over.message(),
                    absl::StrCat("over this worker's budget of ",
                                 3 * expert_bytes, " bytes by ", expert_bytes));
  EXPECT_EQ((*store)->Held(), (std::vector<ExpertKey>{{0, 1}, {0, 5}, {1, 2}}));

  // Unloading makes room again.
  ASSERT_TRUE((*store)->Unload({{0, 1}}).ok());
  EXPECT_TRUE((*store)->Load({{1, 0}}).ok());
  EXPECT_EQ((*store)->BytesHeld(), 3 * expert_bytes);

  // A start-up set over the budget is refused too.
  auto too_many =
      ExpertStore::Open(MakeTestModel(spec), {{0, 0}, {0, 1}, {0, 2}, {0, 3}},
                        *cpu, 3 * expert_bytes);
  EXPECT_EQ(too_many.status().code(), absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace moe::testing

#include "gateway/admission.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/support/expect_has_substr.h"

namespace moe {
namespace {

TEST(AdmissionTest, RunsAtOnceWhileSlotsAreFree) {
  Admission admission(2, 1);
  std::vector<int> started;
  int a, b;
  ASSERT_TRUE(admission.Admit(&a, [&] { started.push_back(1); }).ok());
  ASSERT_TRUE(admission.Admit(&b, [&] { started.push_back(2); }).ok());
  EXPECT_EQ(started, (std::vector<int>{1, 2}));
  EXPECT_EQ(admission.in_flight(), 2);
  EXPECT_EQ(admission.queued(), 0);
}

TEST(AdmissionTest, QueuesThenRefusesAtOnce) {
  Admission admission(1, 2);
  int owners[4];
  std::vector<int> started;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(
        admission.Admit(&owners[i], [&, i] { started.push_back(i); }).ok());
  }
  EXPECT_EQ(started, std::vector<int>{0});
  EXPECT_EQ(admission.queued(), 2);
  const absl::Status full = admission.Admit(&owners[3], [] { FAIL(); });
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_HAS_SUBSTR(full.message(), "--max-in-flight 1");
  EXPECT_HAS_SUBSTR(full.message(), "--max-queued 2");

  // Each release hands the slot to the oldest waiting request.
  admission.Release();
  EXPECT_EQ(started, (std::vector<int>{0, 1}));
  EXPECT_EQ(admission.in_flight(), 1);
  admission.Release();
  EXPECT_EQ(started, (std::vector<int>{0, 1, 2}));
  admission.Release();
  EXPECT_EQ(admission.in_flight(), 0);
  EXPECT_EQ(admission.queued(), 0);
}

TEST(AdmissionTest, WithdrawnRequestsNeverStart) {
  Admission admission(1, 2);
  int a, b, c;
  std::vector<int> started;
  ASSERT_TRUE(admission.Admit(&a, [&] { started.push_back(1); }).ok());
  ASSERT_TRUE(admission.Admit(&b, [&] { started.push_back(2); }).ok());
  ASSERT_TRUE(admission.Admit(&c, [&] { started.push_back(3); }).ok());
  EXPECT_TRUE(admission.Withdraw(&b));
  EXPECT_FALSE(admission.Withdraw(&b));
  EXPECT_FALSE(admission.Withdraw(&a));  // running: not queued
  admission.Release();
  EXPECT_EQ(started, (std::vector<int>{1, 3}));
}

TEST(AdmissionTest, NoQueueMeansRefusedWhenBusy) {
  Admission admission(1, 0);
  int a, b;
  ASSERT_TRUE(admission.Admit(&a, [] {}).ok());
  EXPECT_EQ(admission.Admit(&b, [] {}).code(),
            absl::StatusCode::kResourceExhausted);
  admission.Release();
  EXPECT_TRUE(admission.Admit(&b, [] {}).ok());
}

}  // namespace
}  // namespace moe

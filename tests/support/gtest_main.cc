// The main of every GoogleTest binary here. It exits with kSkippedExitCode
// when every test that ran was skipped (no GPU, no demo model) and none
// failed, so ctest (SKIP_RETURN_CODE) reports the binary as skipped. A
// binary with a failure fails, whatever else skipped; one with a pass and a
// skip passes, and its log names the skipped tests.
#include <gtest/gtest.h>

namespace {

constexpr int kSkippedExitCode = 77;

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const int result = RUN_ALL_TESTS();
  const ::testing::UnitTest& tests = *::testing::UnitTest::GetInstance();
  if (result == 0 && tests.successful_test_count() == 0 &&
      tests.skipped_test_count() > 0) {
    return kSkippedExitCode;
  }
  return result;
}

#ifndef MOE_TESTS_SUPPORT_EXPECT_HAS_SUBSTR_H_
#define MOE_TESTS_SUPPORT_EXPECT_HAS_SUBSTR_H_

#include <gtest/gtest.h>

#include <string>

// EXPECT_HAS_SUBSTR(text, part): `text` contains `part`. gmock is not linked
// into the tests; this uses gtest's own predicate formatter, which prints both
// strings on failure.
#define EXPECT_HAS_SUBSTR(text, part)                            \
  EXPECT_PRED_FORMAT2(::testing::IsSubstring, std::string(part), \
                      std::string(text))

#endif  // MOE_TESTS_SUPPORT_EXPECT_HAS_SUBSTR_H_

#include "gateway/stop_matcher.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace moe {
namespace {

// Pushes `pieces` and returns the released text; `matched` says whether a
// stop string ended it.
std::string PushAll(StopMatcher& matcher,
                    const std::vector<std::string>& pieces, bool& matched) {
  std::string text;
  matched = false;
  for (const std::string& piece : pieces) {
    StopMatcher::Result result = matcher.Push(piece);
    text += result.text;
    if (result.matched) {
      matched = true;
      return text;
    }
  }
  return text + matcher.Flush();
}

TEST(StopMatcherTest, WithoutStopsEverythingPassesAtOnce) {
  StopMatcher matcher({});
  EXPECT_EQ(matcher.Push("Hello").text, "Hello");
  EXPECT_EQ(matcher.Push(" world").text, " world");
  EXPECT_EQ(matcher.Flush(), "");
}

TEST(StopMatcherTest, MatchInsideOnePiece) {
  StopMatcher matcher({"\n\n"});
  StopMatcher::Result result = matcher.Push("Paris.\n\nQuestion");
  EXPECT_TRUE(result.matched);
  EXPECT_EQ(result.text, "Paris.");
}

TEST(StopMatcherTest, MatchAcrossPieces) {
  StopMatcher matcher({"lo W"});
  bool matched;
  EXPECT_EQ(PushAll(matcher, {"Hel", "lo", " W", "orld"}, matched), "Hel");
  EXPECT_TRUE(matched);
}

TEST(StopMatcherTest, HoldsBackOnlyWhatCouldStartAStop) {
  StopMatcher matcher({"END"});
  EXPECT_EQ(matcher.Push("the E").text, "the ");  // "E" may start "END"
  EXPECT_EQ(matcher.Push("N").text, "");          // "EN" still may
  EXPECT_EQ(matcher.Push("d").text, "ENd");       // it did not
  EXPECT_EQ(matcher.Push("E").text, "");
  EXPECT_EQ(matcher.Flush(), "E");  // the end of the stream releases it
}

TEST(StopMatcherTest, OverlappingPrefixStillMatches) {
  // After "aa" fails as "aab", its second "a" starts the match.
  StopMatcher matcher({"aab"});
  bool matched;
  EXPECT_EQ(PushAll(matcher, {"xa", "a", "a", "b", "tail"}, matched), "xa");
  EXPECT_TRUE(matched);
}

TEST(StopMatcherTest, EarliestOfSeveralStopsWins) {
  StopMatcher matcher({"world", "lo"});
  StopMatcher::Result result = matcher.Push("hello world");
  EXPECT_TRUE(result.matched);
  EXPECT_EQ(result.text, "hel");
}

TEST(StopMatcherTest, StopAtTheStartReleasesNothing) {
  StopMatcher matcher({"##"});
  bool matched;
  EXPECT_EQ(PushAll(matcher, {"#", "#", "more"}, matched), "");
  EXPECT_TRUE(matched);
}

TEST(StopMatcherTest, PiecesAfterTheMatchAreIgnored) {
  StopMatcher matcher({"."});
  EXPECT_TRUE(matcher.Push("One.").matched);
  StopMatcher::Result after = matcher.Push("Two.");
  EXPECT_FALSE(after.matched);
  EXPECT_EQ(after.text, "");
  EXPECT_EQ(matcher.Flush(), "");
}

TEST(StopMatcherTest, MultiByteCharactersAreNotSplit) {
  // "é" is two bytes; a stop starting with its first byte holds both back
  // only while they could match.
  StopMatcher matcher({"\xC3\xA9t\xC3\xA9"});
  EXPECT_EQ(matcher.Push("caf\xC3\xA9").text, "caf");
  EXPECT_EQ(matcher.Push("!").text, "\xC3\xA9!");
}

}  // namespace
}  // namespace moe

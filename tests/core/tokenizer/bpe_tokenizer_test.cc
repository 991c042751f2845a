#include "core/tokenizer/bpe_tokenizer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/tokenizer/incremental_detokenizer.h"
#include "core/tokenizer/tokenizer.h"
#include "core/tokenizer/utf8.h"
#include "core/util/file_util.h"
#include "nlohmann/json.hpp"
#include "tests/support/expect_has_substr.h"

namespace moe::testing {
namespace {

using nlohmann::json;
using Ids = std::vector<int32_t>;

constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD

// GPT-2's bytes_to_unicode, written out here from its Python definition: the
// character that stands for `byte` in byte-level vocabularies, as UTF-8.
std::string ByteChar(int byte) {
  const bool printable = (byte >= '!' && byte <= '~') ||
                         (byte >= 0xA1 && byte <= 0xAC) ||
                         (byte >= 0xAE && byte <= 0xFF);
  int code_point = byte;
  if (!printable) {
    code_point = 256;
    for (int b = 0; b < byte; ++b) {
      const bool b_printable = (b >= '!' && b <= '~') ||
                               (b >= 0xA1 && b <= 0xAC) ||
                               (b >= 0xAE && b <= 0xFF);
      if (!b_printable) ++code_point;
    }
  }
  if (code_point < 0x80) return std::string(1, static_cast<char>(code_point));
  return {static_cast<char>(0xC0 | (code_point >> 6)),
          static_cast<char>(0x80 | (code_point & 0x3F))};
}

json ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex) {
  return {{"type", "ByteLevel"},
          {"add_prefix_space", add_prefix_space},
          {"trim_offsets", true},
          {"use_regex", use_regex}};
}

// A byte-level BPE tokenizer.json as tokenizers writes one: the 256 byte
// characters with id = byte value, then the result of each merge ("a b", in
// the byte-level alphabet) with ids from 256 in merge order.
json BpeJson(const std::vector<std::string>& merges) {
  json vocab = json::object();
  for (int byte = 0; byte < 256; ++byte) vocab[ByteChar(byte)] = byte;
  for (const std::string& merge : merges) {
    const size_t space = merge.find(' ');
    const std::string merged = merge.substr(0, space) + merge.substr(space + 1);
    if (!vocab.contains(merged)) vocab[merged] = vocab.size();
  }
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", json::array()},
          {"normalizer", nullptr},
          {"pre_tokenizer", ByteLevelPreTokenizer(false, true)},
          {"post_processor", nullptr},
          {"decoder", ByteLevelPreTokenizer(true, true)},
          {"model",
           {{"type", "BPE"},
            {"dropout", nullptr},
            {"unk_token", nullptr},
            {"continuing_subword_prefix", nullptr},
            {"end_of_word_suffix", nullptr},
            {"fuse_unk", false},
            {"byte_fallback", false},
            {"ignore_merges", false},
            {"vocab", vocab},
            {"merges", merges}}}};
}

json AddedToken(const std::string& content, int id, bool special,
                bool normalized = false) {
  return {{"id", id},          {"content", content}, {"single_word", false},
          {"lstrip", false},   {"rstrip", false},    {"normalized", normalized},
          {"special", special}};
}

// A fresh directory of this process for one test.
std::string TestDir(const std::string& name) {
  const std::string dir = absl::StrCat(
      ::testing::TempDir(), "/moe_bpe_tokenizer_test_", getpid(), "_", name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

absl::StatusOr<std::unique_ptr<moe::Tokenizer>> TryLoad(
    const json& tokenizer, std::optional<int> bos_id = std::nullopt) {
  const std::string path = TestDir("load") + "/tokenizer.json";
  EXPECT_TRUE(WriteStringToFile(path, tokenizer.dump()).ok());
  return LoadBpeTokenizer(path, bos_id);
}

// Loads `tokenizer`, failing the test on error (the result is then null).
std::unique_ptr<moe::Tokenizer> Load(const json& tokenizer,
                                     std::optional<int> bos_id = std::nullopt) {
  auto loaded = TryLoad(tokenizer, bos_id);
  EXPECT_TRUE(loaded.ok()) << loaded.status();
  return loaded.ok() ? std::move(*loaded) : nullptr;
}

Ids Encode(const moe::Tokenizer& tokenizer, std::string_view text) {
  auto ids = tokenizer.Encode(text);
  EXPECT_TRUE(ids.ok()) << ids.status();
  return ids.ok() ? *ids : Ids{};
}

std::string Decode(const moe::Tokenizer& tokenizer, const Ids& ids) {
  auto text = tokenizer.Decode(ids);
  EXPECT_TRUE(text.ok()) << text.status();
  return text.ok() ? *text : "";
}

TEST(BpeTokenizerTest, MergesApplyLowestRankFirstNotLeftToRight) {
  // "b c" outranks "a b": "abc" is a + bc, although a b comes first.
  auto bc_first = Load(BpeJson({"b c", "a b"}));
  ASSERT_NE(bc_first, nullptr);
  EXPECT_EQ(Encode(*bc_first, "abc"), (Ids{'a', 256}));
  auto ab_first = Load(BpeJson({"a b", "b c"}));
  ASSERT_NE(ab_first, nullptr);
  EXPECT_EQ(Encode(*ab_first, "abc"), (Ids{256, 'c'}));
  // Merges build on merges.
  auto chain = Load(BpeJson({"a b", "ab c"}));
  ASSERT_NE(chain, nullptr);
  EXPECT_EQ(Encode(*chain, "abcab"), (Ids{257, 256}));
}

TEST(BpeTokenizerTest, EqualRanksMergeLeftmostFirst) {
  auto tokenizer = Load(BpeJson({"a a"}));
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(Encode(*tokenizer, "aaa"), (Ids{256, 'a'}));
  EXPECT_EQ(Encode(*tokenizer, "aaaa"), (Ids{256, 256}));
}

TEST(BpeTokenizerTest, MergesMayBeStringsOrPairs) {
  json pairs = BpeJson({"b c", "a b"});
  pairs["model"]["merges"] =
      json::array({json::array({"b", "c"}), json::array({"a", "b"})});
  auto tokenizer = Load(pairs);
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(Encode(*tokenizer, "abc"), (Ids{'a', 256}));
}

TEST(BpeTokenizerTest, BytesAreSpelledInTheByteLevelAlphabet) {
  // "é" is C3 A9, spelled "Ã©"; a space is "Ġ", a newline "Ċ".
  auto tokenizer = Load(BpeJson({"Ã ©", "Ġ a", "Ċ Ċ"}));
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(Encode(*tokenizer, "é"), (Ids{256}));
  EXPECT_EQ(Encode(*tokenizer, "ê"), (Ids{0xC3, 0xAA}));
  EXPECT_EQ(Encode(*tokenizer, "x a"), (Ids{'x', 257}));
  EXPECT_EQ(Encode(*tokenizer, "\n\n"), (Ids{258}));
  EXPECT_EQ(Encode(*tokenizer, "🙂"), (Ids{0xF0, 0x9F, 0x99, 0x82}));
}

TEST(BpeTokenizerTest, GptTwoPatternCutsWordsBeforeMerging) {
  // "a Ġ" would join a word to the next one's space; the pattern keeps the
  // space with the word after it.
  json with_regex = BpeJson({"a Ġ", "Ġ b"});
  auto tokenizer = Load(with_regex);
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(Encode(*tokenizer, "a b"), (Ids{'a', 257}));

  json without_regex = with_regex;
  without_regex["pre_tokenizer"] = ByteLevelPreTokenizer(false, false);
  auto one_word = Load(without_regex);
  ASSERT_NE(one_word, nullptr);
  EXPECT_EQ(Encode(*one_word, "a b"), (Ids{256, 'b'}));
}

TEST(BpeTokenizerTest, AddPrefixSpaceAddsOneSpaceUnlessThereIsOne) {
  json tokenizer_json = BpeJson({"Ġ b"});
  tokenizer_json["pre_tokenizer"] = ByteLevelPreTokenizer(true, true);
  auto tokenizer = Load(tokenizer_json);
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(Encode(*tokenizer, "b"), (Ids{256}));
  EXPECT_EQ(Encode(*tokenizer, " b"), (Ids{256}));
  EXPECT_EQ(Encode(*tokenizer, ""), Ids{});
}

TEST(BpeTokenizerTest, AddedTokensAreCutOutFirstLongestMatchWins) {
  json tokenizer_json = BpeJson({"a b"});  // ids up to 256
  tokenizer_json["added_tokens"] = {AddedToken("<|s|>", 257, true),
                                    AddedToken("<x>", 258, false),
                                    AddedToken("<x>y", 259, false)};
  auto tokenizer = Load(tokenizer_json);
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(tokenizer->vocab_size(), 260);
  // "ab" does not merge across the special token.
  EXPECT_EQ(Encode(*tokenizer, "a<|s|>b<x>y<x><|s|><|s|>"),
            (Ids{'a', 257, 'b', 259, 258, 257, 257}));
  EXPECT_EQ(Encode(*tokenizer, "<|s|"), (Ids{'<', '|', 's', '|'}));
  // Special tokens decode to nothing, the others to their content.
  EXPECT_EQ(Decode(*tokenizer, {'a', 257, 'b', 259, 258}), "ab<x>y<x>");
  EXPECT_EQ(Decode(*tokenizer, {257}), "");
}

TEST(BpeTokenizerTest, NormalizedAddedTokensAreMatchedAfterTheOthers) {
  // tokenizers cuts "a>b" (normalized: false) out of "<a>b" before it looks
  // for "<a>" (normalized: true) in what is left.
  json tokenizer_json = BpeJson({});
  tokenizer_json["added_tokens"] = {
      AddedToken("<a>", 256, false, /*normalized=*/true),
      AddedToken("a>b", 257, false, /*normalized=*/false)};
  auto tokenizer = Load(tokenizer_json);
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(Encode(*tokenizer, "<a>b"), (Ids{'<', 257}));
  EXPECT_EQ(Encode(*tokenizer, "<a>c"), (Ids{256, 'c'}));
}

TEST(BpeTokenizerTest, DecodeInvertsEncode) {
  auto tokenizer = Load(BpeJson({"Ġ t", "h e", "Ġt he", "Ã ©"}));
  ASSERT_NE(tokenizer, nullptr);
  for (const char* text :
       {"the cat and the hat", "  leading, double  spaces\tand a tab\n",
        "café naïve 中文 🙂🚀 👩‍💻",
        "int main() { return x->y[0]; }", "\r\n"}) {
    const Ids ids = Encode(*tokenizer, text);
    EXPECT_FALSE(ids.empty());
    EXPECT_EQ(Decode(*tokenizer, ids), text);
  }
}

TEST(BpeTokenizerTest, DecodeReplacesBytesThatAreNotUtf8) {
  auto tokenizer = Load(BpeJson({}));
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(Decode(*tokenizer, {0xC3, 0xA9}), "é");
  EXPECT_EQ(Decode(*tokenizer, {0xC3}), kReplacement);
  EXPECT_EQ(Decode(*tokenizer, {'a', 0xF0, 0x9F, 0x99}),
            absl::StrCat("a", kReplacement));
  EXPECT_EQ(Decode(*tokenizer, {0xFF, 0xFE}),
            absl::StrCat(kReplacement, kReplacement));
}

TEST(BpeTokenizerTest, StreamedTextNeverSplitsACharacter) {
  auto tokenizer = Load(BpeJson({"Ġ t"}));  // one token per byte, mostly
  ASSERT_NE(tokenizer, nullptr);
  const std::string text = "a 🙂 t 中文 é";
  IncrementalDetokenizer detokenizer(*tokenizer);
  std::string streamed;
  for (const int32_t id : Encode(*tokenizer, text)) {
    const std::string piece = detokenizer.Append(id).value();
    EXPECT_EQ(ReplaceInvalidUtf8(piece), piece);
    EXPECT_EQ(piece.find(kReplacement), std::string::npos);
    streamed += piece;
  }
  streamed += detokenizer.Flush().value();
  EXPECT_EQ(streamed, text);
}

TEST(BpeTokenizerTest, DecodeRejectsIdsOutsideTheVocabularyNamingThem) {
  json tokenizer_json = BpeJson({});
  tokenizer_json["model"]["vocab"].erase(ByteChar('q'));  // id 113 is unused
  auto tokenizer = Load(tokenizer_json);
  ASSERT_NE(tokenizer, nullptr);
  ASSERT_EQ(tokenizer->vocab_size(), 256);
  for (const int32_t id : {256, -1, 113}) {
    auto text = tokenizer->Decode(Ids{'a', id});
    ASSERT_FALSE(text.ok()) << id;
    EXPECT_EQ(text.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_HAS_SUBSTR(text.status().message(), absl::StrCat("token id ", id));
  }
}

// Python's bytes.decode("utf-8", errors="replace") on the same bytes gives
// these (one U+FFFD per maximal subpart).
TEST(BpeTokenizerTest, IllFormedUtf8IsReplacedAsPythonDoes) {
  const std::string r = kReplacement;
  const std::pair<std::string, std::string> cases[] = {
      {"\xFF", r},
      {"\xE2\x82", r},
      {"\xE2\x82"
       "A",
       r + "A"},
      {"\xED\xA0\x80", r + r + r},          // a surrogate
      {"\xC0\x80", r + r},                  // overlong
      {"\xF0\x9F\x98", r},                  // an emoji cut short
      {"\xF4\x90\x80\x80", r + r + r + r},  // past U+10FFFF
      {"\xE0\x80\x80", r + r + r},
      {"a\x80\x80"
       "b",
       "a" + r + r + "b"},
      {"\xF0\x9F\x98\xC3\xA9", r + "é"},
      {"é🙂 fine", "é🙂 fine"},
  };
  for (const auto& [bytes, text] : cases) {
    EXPECT_EQ(ReplaceInvalidUtf8(bytes), text);
  }
}

TEST(BpeTokenizerTest, EncodeOfIllFormedUtf8IsTheEncodeOfItsReplacement) {
  // U+FFFD is EF BF BD, spelled "ï¿½": id 257.
  auto tokenizer = Load(BpeJson({"ï ¿", "ï¿ ½"}));
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(Encode(*tokenizer,
                   "a\xFF"
                   "b"),
            (Ids{'a', 257, 'b'}));
  EXPECT_EQ(Encode(*tokenizer, "\xE2\x82"), (Ids{257}));
  EXPECT_EQ(Encode(*tokenizer, "\xED\xA0\x80"), (Ids{257, 257, 257}));
}

TEST(BpeTokenizerTest, IgnoreMergesTakesAWordInTheVocabWhole) {
  json tokenizer_json = BpeJson({"a b"});
  tokenizer_json["model"]["vocab"]["abc"] = 257;
  auto merging = Load(tokenizer_json);
  ASSERT_NE(merging, nullptr);
  EXPECT_EQ(Encode(*merging, "abc"), (Ids{256, 'c'}));
  tokenizer_json["model"]["ignore_merges"] = true;
  auto ignoring = Load(tokenizer_json);
  ASSERT_NE(ignoring, nullptr);
  EXPECT_EQ(Encode(*ignoring, "abc"), (Ids{257}));
  EXPECT_EQ(Encode(*ignoring, "abcd"), (Ids{256, 'c', 'd'}));
}

TEST(BpeTokenizerTest, CharactersOutsideTheVocabBecomeUnkOrAreDropped) {
  json tokenizer_json = BpeJson({});
  tokenizer_json["model"]["vocab"] = {{"a", 0}, {"b", 1}, {"<unk>", 2}};
  auto dropping = Load(tokenizer_json);
  ASSERT_NE(dropping, nullptr);
  EXPECT_EQ(Encode(*dropping, "azzb"), (Ids{0, 1}));
  tokenizer_json["model"]["unk_token"] = "<unk>";
  auto unk = Load(tokenizer_json);
  ASSERT_NE(unk, nullptr);
  EXPECT_EQ(Encode(*unk, "azzb"), (Ids{0, 2, 2, 1}));
  tokenizer_json["model"]["fuse_unk"] = true;
  auto fused = Load(tokenizer_json);
  ASSERT_NE(fused, nullptr);
  EXPECT_EQ(Encode(*fused, "azzb"), (Ids{0, 2, 1}));
}

json WithPreTokenizers(json tokenizer_json, json steps) {
  steps.push_back(ByteLevelPreTokenizer(false, false));
  tokenizer_json["pre_tokenizer"] = {{"type", "Sequence"},
                                     {"pretokenizers", steps}};
  return tokenizer_json;
}

TEST(BpeTokenizerTest, DigitsSplitsEachDigitOrRunsOfThem) {
  const json base = BpeJson({"1 2", "a 1"});
  auto individual = Load(WithPreTokenizers(
      base, {{{"type", "Digits"}, {"individual_digits", true}}}));
  ASSERT_NE(individual, nullptr);
  EXPECT_EQ(Encode(*individual, "a12"), (Ids{'a', '1', '2'}));
  auto runs = Load(WithPreTokenizers(
      base, {{{"type", "Digits"}, {"individual_digits", false}}}));
  ASSERT_NE(runs, nullptr);
  EXPECT_EQ(Encode(*runs, "a12"), (Ids{'a', 256}));
}

TEST(BpeTokenizerTest, SplitBehaviorsAsTokenizers) {
  // Merges 256 "a-", 257 "-b", 258 "--". Expected ids from tokenizers 0.23.
  const json base = BpeJson({"a -", "- b", "- -"});
  struct Case {
    const char* behavior;
    json pattern;
    bool invert;
    const char* text;
    Ids ids;
  };
  const Case cases[] = {
      {"Isolated", {{"String", "-"}}, false, "a-b", {'a', '-', 'b'}},
      {"Isolated", {{"String", "-"}}, false, "a--b", {'a', '-', '-', 'b'}},
      {"Removed", {{"String", "-"}}, false, "a-b", {'a', 'b'}},
      {"MergedWithPrevious", {{"String", "-"}}, false, "a-b", {256, 'b'}},
      {"MergedWithNext", {{"String", "-"}}, false, "a-b", {'a', 257}},
      {"Contiguous", {{"String", "-"}}, false, "a--b", {'a', 258, 'b'}},
      {"Removed", {{"Regex", "[a-z]"}}, false, "a-b", {'-'}},
      {"Removed", {{"Regex", "[a-z]"}}, true, "a-b", {'a', 'b'}},
  };
  for (const Case& c : cases) {
    auto tokenizer = Load(WithPreTokenizers(base, {{{"type", "Split"},
                                                    {"pattern", c.pattern},
                                                    {"behavior", c.behavior},
                                                    {"invert", c.invert}}}));
    ASSERT_NE(tokenizer, nullptr);
    EXPECT_EQ(Encode(*tokenizer, c.text), c.ids)
        << c.behavior << " " << c.pattern.dump() << " invert " << c.invert;
  }
}

TEST(BpeTokenizerTest, LongBacktrackingMatchesStillSucceed) {
  // PCRE2's JIT runs out of its fixed stack on this pattern over a long run
  // of spaces; the match must not fail.
  const json tokenizer_json = WithPreTokenizers(
      BpeJson({}), {{{"type", "Split"},
                     {"pattern", {{"Regex", "(?:\\s|x)+(?!\\S)"}}},
                     {"behavior", "Isolated"},
                     {"invert", false}}});
  auto tokenizer = Load(tokenizer_json);
  ASSERT_NE(tokenizer, nullptr);
  const std::string spaces(1 << 20, ' ');
  const Ids ids = Encode(*tokenizer, spaces + "y");
  ASSERT_EQ(ids.size(), spaces.size() + 1);
  EXPECT_EQ(ids.front(), ' ');
  EXPECT_EQ(ids.back(), 'y');
}

TEST(BpeTokenizerTest, EncodesTheSameFromManyThreads) {
  auto tokenizer = Load(BpeJson({"Ġ t", "h e", "Ġt he"}));
  ASSERT_NE(tokenizer, nullptr);
  const std::string text = "the theory of the thermal thesis, 12345 🙂\n";
  const Ids expected = Encode(*tokenizer, text);
  std::vector<Ids> results(4);
  std::vector<std::thread> threads;
  for (Ids& result : results) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) result = tokenizer->Encode(text).value();
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const Ids& result : results) EXPECT_EQ(result, expected);
}

json TemplateProcessing(const json& single, const std::string& special,
                        int id) {
  return {
      {"type", "TemplateProcessing"},
      {"single", single},
      {"pair", json::array()},
      {"special_tokens",
       {{special, {{"id", special}, {"ids", {id}}, {"tokens", {special}}}}}}};
}

json WithBosTemplate() {
  json tokenizer_json = BpeJson({});
  tokenizer_json["added_tokens"] = {AddedToken("<s>", 256, true)};
  tokenizer_json["post_processor"] = {
      {"type", "Sequence"},
      {"processors",
       {ByteLevelPreTokenizer(true, false),
        TemplateProcessing({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                            {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}},
                           "<s>", 256)}}};
  return tokenizer_json;
}

TEST(BpeTokenizerTest, BosIsTheTemplatesLeadingSpecialTokenUnlessGiven) {
  const json tokenizer_json = WithBosTemplate();
  auto from_template = Load(tokenizer_json);
  ASSERT_NE(from_template, nullptr);
  EXPECT_EQ(from_template->EncodePrompt("a").value(), (Ids{256, 'a'}));
  EXPECT_EQ(Encode(*from_template, "a"), (Ids{'a'}));
  auto none = Load(tokenizer_json, -1);
  ASSERT_NE(none, nullptr);
  EXPECT_EQ(none->EncodePrompt("a").value(), (Ids{'a'}));
  auto given = Load(tokenizer_json, 5);
  ASSERT_NE(given, nullptr);
  EXPECT_EQ(given->EncodePrompt("a").value(), (Ids{5, 'a'}));

  // A template that starts with the text adds no BOS.
  json eos_only = tokenizer_json;
  eos_only["post_processor"] =
      TemplateProcessing({{{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                          {{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}},
                         "<s>", 256);
  auto no_bos = Load(eos_only);
  ASSERT_NE(no_bos, nullptr);
  EXPECT_EQ(no_bos->EncodePrompt("a").value(), (Ids{'a'}));
}

TEST(BpeTokenizerTest, DropoutOfZeroIsNoDropout) {
  json tokenizer_json = BpeJson({"a b"});
  tokenizer_json["model"]["dropout"] = 0.0;
  auto tokenizer = Load(tokenizer_json);
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(Encode(*tokenizer, "ab"), (Ids{256}));
}

TEST(BpeTokenizerTest, RejectsWhatItDoesNotImplementNamingIt) {
  struct Case {
    std::function<void(json&)> edit;
    std::vector<std::string> message_parts;
  };
  const json split_step = {{"type", "Split"},
                           {"pattern", {{"Regex", "a"}}},
                           {"behavior", "Isolated"},
                           {"invert", false}};
  const Case cases[] = {
      {[](json& j) {
         j["normalizer"] = {{"type", "NFC"}};
       },
       {"normalizer", "\"NFC\""}},
      {[](json& j) { j["model"]["dropout"] = 0.1; }, {"model.dropout", "0.1"}},
      {[](json& j) { j["model"]["byte_fallback"] = true; },
       {"model", "byte_fallback"}},
      {[](json& j) { j["model"]["continuing_subword_prefix"] = "##"; },
       {"continuing_subword_prefix", "##"}},
      {[](json& j) { j["model"]["end_of_word_suffix"] = "</w>"; },
       {"end_of_word_suffix", "</w>"}},
      {[](json& j) { j["model"]["type"] = "WordPiece"; },
       {"model", "WordPiece"}},
      {[](json& j) { j["model"]["merges"] = {"a zz"}; },
       {"model.merges[0]", "\"zz\""}},
      {[](json& j) {
         j["model"]["merges"] = {"a b", "ab"};
       },
       {"model.merges[1]", "\"ab\""}},
      {[](json& j) { j["model"]["vocab"]["x"] = -3; },
       {"model.vocab", "\"x\""}},
      {[](json& j) { j["model"]["vocab"]["xy"] = 5; },
       {"model.vocab", "same id 5"}},
      {[](json& j) {
         j["pre_tokenizer"] = {{"type", "Whitespace"}};
       },
       {"pre_tokenizer", "\"Whitespace\""}},
      {[](json& j) {
         j = WithPreTokenizers(j, {{{"type", "Metaspace"}}});
       },
       {"pre_tokenizer.pretokenizers[0]", "\"Metaspace\""}},
      {[&](json& j) {
         json bad = split_step;
         bad["pattern"] = {{"Regex", "(unclosed"}};
         j = WithPreTokenizers(j, {bad});
       },
       {"pre_tokenizer.pretokenizers[0].pattern", "(unclosed"}},
      {[&](json& j) {
         json bad = split_step;
         bad["behavior"] = "Sideways";
         j = WithPreTokenizers(j, {bad});
       },
       {"pre_tokenizer.pretokenizers[0].behavior", "\"Sideways\""}},
      {[&](json& j) { j["pre_tokenizer"] = split_step; },
       {"pre_tokenizer", "ByteLevel"}},
      {[](json& j) {
         j["decoder"] = {{"type", "WordPiece"}};
       },
       {"decoder", "\"WordPiece\""}},
      {[](json& j) { j["decoder"] = nullptr; }, {"decoder"}},
      {[](json& j) {
         j["post_processor"] = {{"type", "BertProcessing"}};
       },
       {"post_processor", "\"BertProcessing\""}},
      {[](json& j) {
         json token = AddedToken("<m>", 257, true);
         token["lstrip"] = true;
         j["added_tokens"] = {token};
       },
       {"added_tokens[0]", "lstrip", "<m>"}},
      {[](json& j) {
         json token = AddedToken("<m>", 257, true);
         token["single_word"] = true;
         j["added_tokens"] = {token};
       },
       {"added_tokens[0]", "single_word"}},
      // tokenizers would give these the ids 97 and 257.
      {[](json& j) { j["added_tokens"] = {AddedToken("a", 300, false)}; },
       {"added_tokens[0]", "has id 300", "gives it 97"}},
      {[](json& j) { j["added_tokens"] = {AddedToken("<m>", 300, true)}; },
       {"added_tokens[0]", "has id 300", "gives it 257"}},
  };
  for (const Case& c : cases) {
    json tokenizer_json = BpeJson({"a b"});  // ids up to 256
    c.edit(tokenizer_json);
    auto loaded = TryLoad(tokenizer_json);
    ASSERT_FALSE(loaded.ok()) << tokenizer_json.dump().substr(0, 300);
    EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument)
        << loaded.status();
    EXPECT_HAS_SUBSTR(loaded.status().message(), "tokenizer.json: ");
    for (const std::string& part : c.message_parts) {
      EXPECT_HAS_SUBSTR(loaded.status().message(), part);
    }
  }
}

TEST(BpeTokenizerTest, MalformedJsonIsAnErrorNamingTheFile) {
  const std::string path = TestDir("malformed") + "/tokenizer.json";
  ASSERT_TRUE(WriteStringToFile(path, "{\"model\": {").ok());
  auto loaded = LoadBpeTokenizer(path, std::nullopt);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_HAS_SUBSTR(loaded.status().message(), path);
}

// LoadTokenizer on a checkpoint directory with a tokenizer.json.
class LoadTokenizerBpeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    directory_ = TestDir("checkpoint");
    ASSERT_TRUE(WriteStringToFile(directory_ + "/tokenizer.json",
                                  WithBosTemplate().dump())
                    .ok());
    config_.vocab_size = 300;
    config_.bos_token_id = 7;
  }

  Ids Prompt() {
    auto tokenizer = LoadTokenizer(directory_, config_);
    EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
    if (!tokenizer.ok()) return {};
    return (*tokenizer)->EncodePrompt("a").value();
  }

  void WriteTokenizerConfig(const json& config) {
    ASSERT_TRUE(
        WriteStringToFile(directory_ + "/tokenizer_config.json", config.dump())
            .ok());
  }

  std::string directory_;
  ModelConfig config_;
};

TEST_F(LoadTokenizerBpeTest, BosFromTheTokenizerConfigElseTheTemplate) {
  EXPECT_EQ(Prompt(), (Ids{256, 'a'}));
  WriteTokenizerConfig({{"add_bos_token", true}});
  EXPECT_EQ(Prompt(), (Ids{7, 'a'}));
  WriteTokenizerConfig({{"add_bos_token", false}});
  EXPECT_EQ(Prompt(), (Ids{'a'}));
  WriteTokenizerConfig({{"bos_token", "<s>"}});
  EXPECT_EQ(Prompt(), (Ids{256, 'a'}));
}

TEST_F(LoadTokenizerBpeTest, VocabularyMustFitTheModel) {
  config_.vocab_size = 257;
  EXPECT_TRUE(LoadTokenizer(directory_, config_).ok());
  config_.vocab_size = 256;
  auto tokenizer = LoadTokenizer(directory_, config_);
  ASSERT_FALSE(tokenizer.ok());
  EXPECT_EQ(tokenizer.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_HAS_SUBSTR(tokenizer.status().message(), "tokenizer.json has 257");
}

TEST_F(LoadTokenizerBpeTest, NeitherFileIsNotFoundNamingBoth) {
  std::filesystem::remove(directory_ + "/tokenizer.json");
  auto tokenizer = LoadTokenizer(directory_, config_);
  ASSERT_FALSE(tokenizer.ok());
  EXPECT_EQ(tokenizer.status().code(), absl::StatusCode::kNotFound);
  EXPECT_HAS_SUBSTR(tokenizer.status().message(), "tokenizer.model");
  EXPECT_HAS_SUBSTR(tokenizer.status().message(), "tokenizer.json");
}

}  // namespace
}  // namespace moe::testing

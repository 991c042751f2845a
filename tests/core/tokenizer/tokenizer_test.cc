#include "core/tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "core/tokenizer/incremental_detokenizer.h"
#include "core/util/file_util.h"
#include "tests/support/sample_texts.h"
#include "tests/support/test_models.h"

namespace moe::testing {
namespace {

// Whether `text` is well-formed UTF-8 (no truncated or stray sequences).
bool IsValidUtf8(const std::string& text) {
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char lead = text[i];
    const int length = lead < 0x80         ? 1
                       : (lead >> 5) == 6  ? 2
                       : (lead >> 4) == 14 ? 3
                       : (lead >> 3) == 30 ? 4
                                           : 0;
    if (length == 0 || i + length > text.size()) return false;
    for (int k = 1; k < length; ++k) {
      if ((static_cast<unsigned char>(text[i + k]) >> 6) != 2) return false;
    }
    i += length;
  }
  return true;
}

class TokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    directory_ = MakeTestModel(spec_);
    auto tokenizer = LoadTokenizer(directory_, spec_.Config());
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_ = std::move(*tokenizer);
  }
  TestModelSpec spec_;
  std::string directory_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

TEST_F(TokenizerTest, RoundTripsTextIncludingBytesOutsideTheVocabulary) {
  EXPECT_LE(tokenizer_->vocab_size(), spec_.vocab);
  EXPECT_GT(tokenizer_->vocab_size(), 256);  // byte fallback pieces at least
  for (const char* text : kSampleTexts) {
    auto ids = tokenizer_->Encode(text);
    ASSERT_TRUE(ids.ok()) << ids.status();
    ASSERT_FALSE(ids->empty());
    for (int32_t id : *ids) {
      EXPECT_GE(id, 0);
      EXPECT_LT(id, tokenizer_->vocab_size());
    }
    auto decoded = tokenizer_->Decode(*ids);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, text);
  }
}

TEST_F(TokenizerTest, PromptStartsWithBosUnlessTheTokenizerConfigSaysNo) {
  auto plain = tokenizer_->Encode("copy the Program");
  auto prompt = tokenizer_->EncodePrompt("copy the Program");
  ASSERT_TRUE(plain.ok() && prompt.ok());
  ASSERT_EQ(prompt->size(), plain->size() + 1);
  EXPECT_EQ((*prompt)[0], 1);
  EXPECT_TRUE(std::equal(plain->begin(), plain->end(), prompt->begin() + 1));

  const std::string no_bos = directory_ + "_no_bos";
  std::filesystem::create_directories(no_bos);
  std::filesystem::copy_file(directory_ + "/tokenizer.model",
                             no_bos + "/tokenizer.model",
                             std::filesystem::copy_options::overwrite_existing);
  ASSERT_TRUE(WriteStringToFile(no_bos + "/tokenizer_config.json",
                                R"({"add_bos_token": false})")
                  .ok());
  auto tokenizer = LoadTokenizer(no_bos, spec_.Config());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  auto without = (*tokenizer)->EncodePrompt("copy the Program");
  ASSERT_TRUE(without.ok());
  EXPECT_EQ(*without, *plain);
}

TEST_F(TokenizerTest, DecodeRejectsIdsOutsideTheVocabulary) {
  const std::vector<int32_t> ids = {5, tokenizer_->vocab_size()};
  auto decoded = tokenizer_->Decode(ids);
  ASSERT_FALSE(decoded.ok());
  EXPECT_NE(
      decoded.status().message().find(std::to_string(tokenizer_->vocab_size())),
      std::string::npos);
  EXPECT_FALSE(tokenizer_->Decode(std::vector<int32_t>{-1}).ok());
}

TEST_F(TokenizerTest, IncrementalDetokenizationNeverSplitsACharacter) {
  for (const char* text : kSampleTexts) {
    auto ids = tokenizer_->Encode(text);
    ASSERT_TRUE(ids.ok());
    IncrementalDetokenizer detokenizer(*tokenizer_);
    std::string streamed;
    for (int32_t id : *ids) {
      auto piece = detokenizer.Append(id);
      ASSERT_TRUE(piece.ok()) << piece.status();
      EXPECT_TRUE(IsValidUtf8(*piece)) << "piece of \"" << text << "\"";
      streamed += *piece;
    }
    auto rest = detokenizer.Flush();
    ASSERT_TRUE(rest.ok());
    streamed += *rest;
    EXPECT_EQ(streamed, text);
  }
}

TEST_F(TokenizerTest, StreamAfterAPromptKeepsTheLeadingSpaceOfTheFullDecode) {
  auto prompt = tokenizer_->EncodePrompt("The licensee may");
  auto continuation = tokenizer_->Encode(" copy and distribute 中文 🙂 it");
  ASSERT_TRUE(prompt.ok() && continuation.ok());
  std::vector<int32_t> all = *prompt;
  all.insert(all.end(), continuation->begin(), continuation->end());
  auto full = tokenizer_->Decode(all);
  auto prompt_text = tokenizer_->Decode(*prompt);
  ASSERT_TRUE(full.ok() && prompt_text.ok());
  ASSERT_EQ(full->substr(0, prompt_text->size()), *prompt_text);

  IncrementalDetokenizer detokenizer(*tokenizer_, *prompt);
  std::string streamed;
  for (int32_t id : *continuation) {
    auto piece = detokenizer.Append(id);
    ASSERT_TRUE(piece.ok()) << piece.status();
    EXPECT_TRUE(IsValidUtf8(*piece));
    streamed += *piece;
  }
  streamed += detokenizer.Flush().value();
  EXPECT_EQ(streamed, full->substr(prompt_text->size()));
  EXPECT_EQ(streamed[0], ' ');
}

TEST(TokenizerLoadTest, MissingOrCorruptModelIsAClearError) {
  const std::string dir = ::testing::TempDir() + "/moe_tokenizer_load_test";
  std::filesystem::create_directories(dir);
  TestModelSpec spec;
  auto missing = LoadTokenizer(dir + "/nowhere", spec.Config());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(WriteStringToFile(dir + "/tokenizer.model", "not a model").ok());
  auto corrupt = LoadTokenizer(dir, spec.Config());
  ASSERT_FALSE(corrupt.ok());
  EXPECT_NE(corrupt.status().message().find(dir + "/tokenizer.model"),
            std::string::npos)
      << corrupt.status();
}

}  // namespace
}  // namespace moe::testing

#include "core/tokenizer/gguf_tokenizer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "core/tokenizer/tokenizer.h"
#include "core/util/file_util.h"
#include "core/util/subprocess.h"
#include "tests/support/expect_has_substr.h"
#include "tests/support/sample_texts.h"
#include "tests/support/test_models.h"

namespace moe::testing {
namespace {

using nlohmann::json;

// This process's scratch space, removed when the tests end.
std::string TestRoot() {
  return absl::StrCat(::testing::TempDir(), "/moe_gguf_tokenizer_test_",
                      getpid());
}

// A fresh directory under TestRoot().
std::string TestDir(const std::string& name) {
  const std::string dir = TestRoot() + "/" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

class GgufTokenizerTest : public ::testing::Test {
 protected:
  static void TearDownTestSuite() { std::filesystem::remove_all(TestRoot()); }
};

// The metadata llama.cpp's converter writes for a SentencePiece model, built
// independently of the code under test: pieces and scores as spm_export_vocab
// lists them, types from the pieces (ids 0, 1, 2 are <unk>, <s>, </s>; byte
// pieces are <0xNN>).
json LlamaMetadata(const std::string& model_path, const std::string& scratch) {
  const std::string vocab_path = scratch + "/vocab.tsv";
  const absl::Status exported = RunProgram(
      {"spm_export_vocab", "--model=" + model_path, "--output=" + vocab_path},
      scratch + "/export.log");
  EXPECT_TRUE(exported.ok()) << exported;
  const std::string vocab = ReadFileToString(vocab_path).value_or("");
  json tokens = json::array(), scores = json::array(), types = json::array();
  for (absl::string_view line :
       absl::StrSplit(vocab, '\n', absl::SkipEmpty())) {
    const size_t tab = line.rfind('\t');
    float score = 0;
    EXPECT_TRUE(tab != absl::string_view::npos &&
                absl::SimpleAtof(line.substr(tab + 1), &score))
        << line;
    const std::string piece(line.substr(0, tab));
    const int id = static_cast<int>(tokens.size());
    const int type = id == 0                                         ? 2
                     : id <= 2                                       ? 3
                     : piece.size() == 6 && piece.starts_with("<0x") ? 6
                                                                     : 1;
    tokens.push_back(piece);
    scores.push_back(score);
    types.push_back(type);
  }
  return {{"general.architecture", "llama"},
          {"llama.context_length", 512},
          {"tokenizer.ggml.model", "llama"},
          {"tokenizer.ggml.tokens", tokens},
          {"tokenizer.ggml.scores", scores},
          {"tokenizer.ggml.token_type", types},
          {"tokenizer.ggml.unknown_token_id", 0},
          {"tokenizer.ggml.bos_token_id", 1},
          {"tokenizer.ggml.eos_token_id", 2},
          {"tokenizer.ggml.add_bos_token", true},
          {"tokenizer.ggml.add_eos_token", false},
          {"tokenizer.ggml.add_space_prefix", true}};
}

TEST_F(GgufTokenizerTest, SentencePieceEncodesAsTheModelItCameFrom) {
  const TestModelSpec spec;
  const std::string original = MakeTestModel(spec);
  const std::string dir = TestDir("llama");
  const json metadata = LlamaMetadata(original + "/tokenizer.model", dir);
  ASSERT_GT(metadata["tokenizer.ggml.tokens"].size(), 259u);

  auto info = WriteGgufTokenizer(metadata, "model.gguf", dir + "/out");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->vocab_size,
            static_cast<int>(metadata["tokenizer.ggml.tokens"].size()));
  EXPECT_EQ(info->bos_id, 1);
  EXPECT_EQ(info->eos_ids, std::vector<int>{2});
  EXPECT_TRUE(info->add_bos);

  auto expected = LoadTokenizer(original, spec.Config());
  auto exported = LoadTokenizer(dir + "/out", spec.Config());
  ASSERT_TRUE(expected.ok()) << expected.status();
  ASSERT_TRUE(exported.ok()) << exported.status();
  EXPECT_EQ((*exported)->vocab_size(), (*expected)->vocab_size());
  for (const char* text : kSampleTexts) {
    auto want = (*expected)->EncodePrompt(text);
    auto got = (*exported)->EncodePrompt(text);
    ASSERT_TRUE(want.ok() && got.ok());
    EXPECT_EQ(*got, *want) << text;
    auto decoded = (*exported)->Decode(*got);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, text);
  }
  // The emoji is outside the vocabulary: its four bytes must come out as
  // byte pieces (ids 3 to 258), not as <unk>.
  auto emoji = (*exported)->Encode("🙂");
  ASSERT_TRUE(emoji.ok());
  EXPECT_EQ(std::count_if(emoji->begin(), emoji->end(),
                          [](int32_t id) { return id >= 3 && id < 259; }),
            4);
  EXPECT_EQ(std::count(emoji->begin(), emoji->end(), 0), 0);

  auto config = ReadJsonFile(dir + "/out/tokenizer_config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ((*config)["add_bos_token"], true);
  EXPECT_EQ((*config)["add_eos_token"], false);
  EXPECT_EQ((*config)["bos_token"], "<s>");
  EXPECT_EQ((*config)["eos_token"], "</s>");
  EXPECT_EQ((*config)["unk_token"], "<unk>");
  EXPECT_EQ((*config)["model_max_length"], 512);
}

TEST_F(GgufTokenizerTest, SentencePieceWithoutBosSaysSoInTheConfig) {
  const TestModelSpec spec;
  const std::string dir = TestDir("llama_no_bos");
  json metadata = LlamaMetadata(MakeTestModel(spec) + "/tokenizer.model", dir);
  metadata["tokenizer.ggml.add_bos_token"] = false;
  auto info = WriteGgufTokenizer(metadata, "model.gguf", dir + "/out");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_FALSE(info->add_bos);
  auto tokenizer = LoadTokenizer(dir + "/out", spec.Config());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  auto plain = (*tokenizer)->Encode("copy the Program");
  auto prompt = (*tokenizer)->EncodePrompt("copy the Program");
  ASSERT_TRUE(plain.ok() && prompt.ok());
  EXPECT_EQ(*prompt, *plain);
}

// A byte-level BPE vocabulary small enough to check by eye. "Ġ" is the
// byte-level form of a space.
json Gpt2Metadata(const std::string& pre) {
  return {
      {"tokenizer.ggml.model", "gpt2"},
      {"tokenizer.ggml.pre", pre},
      {"tokenizer.ggml.tokens",
       {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool>", "a", "b", "c",
        "Ġ", "1", "ab", "Ġa", "abc", "Ġab"}},
      {"tokenizer.ggml.token_type", {3, 3, 3, 4, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
      {"tokenizer.ggml.merges", {"a b", "Ġ a", "ab c", "Ġ ab"}},
      {"tokenizer.ggml.bos_token_id", 1},
      {"tokenizer.ggml.eos_token_id", 2},
      {"tokenizer.ggml.eot_token_id", 2},
      {"tokenizer.ggml.padding_token_id", 0},
      {"tokenizer.chat_template", "{{ messages }}"}};
}

json ReadTokenizerJson(const std::string& directory) {
  auto tokenizer = ReadJsonFile(directory + "/tokenizer.json");
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return tokenizer.value_or(json());
}

TEST_F(GgufTokenizerTest, ByteLevelBpeBecomesTokenizerJson) {
  const std::string dir = TestDir("gpt2");
  const json metadata = Gpt2Metadata("smollm");
  auto info = WriteGgufTokenizer(metadata, "model.gguf", dir);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->vocab_size, 13);
  EXPECT_EQ(info->bos_id, 1);
  EXPECT_EQ(info->eos_ids, std::vector<int>{2});  // EOT is the same token
  EXPECT_FALSE(info->add_bos);

  const json tokenizer = ReadTokenizerJson(dir);
  EXPECT_EQ(tokenizer["version"], "1.0");
  EXPECT_TRUE(tokenizer["normalizer"].is_null());
  const json& model = tokenizer["model"];
  EXPECT_EQ(model["type"], "BPE");
  EXPECT_EQ(model["byte_fallback"], false);
  EXPECT_EQ(model["ignore_merges"], false);
  ASSERT_EQ(model["vocab"].size(), 13u);
  const json& tokens = metadata["tokenizer.ggml.tokens"];
  for (size_t id = 0; id < tokens.size(); ++id) {
    EXPECT_EQ(model["vocab"][tokens[id].get<std::string>()], id);
  }
  EXPECT_EQ(model["merges"], metadata["tokenizer.ggml.merges"]);

  const json& added = tokenizer["added_tokens"];
  ASSERT_EQ(added.size(), 4u);
  for (size_t id = 0; id < 4; ++id) {
    EXPECT_EQ(added[id]["id"], id);
    EXPECT_EQ(added[id]["content"], tokens[id]);
    EXPECT_EQ(added[id]["special"], id != 3) << id;  // <tool> is user-defined
    EXPECT_EQ(added[id]["normalized"], false);
  }

  const json& pre = tokenizer["pre_tokenizer"];
  EXPECT_EQ(pre["type"], "Sequence");
  ASSERT_EQ(pre["pretokenizers"].size(), 2u);
  EXPECT_EQ(pre["pretokenizers"][0]["type"], "Digits");
  EXPECT_EQ(pre["pretokenizers"][0]["individual_digits"], true);
  EXPECT_EQ(pre["pretokenizers"][1]["type"], "ByteLevel");
  EXPECT_EQ(pre["pretokenizers"][1]["add_prefix_space"], false);
  EXPECT_EQ(pre["pretokenizers"][1]["use_regex"], true);
  EXPECT_EQ(tokenizer["decoder"]["type"], "ByteLevel");
  EXPECT_EQ(tokenizer["post_processor"]["type"], "ByteLevel");

  auto config = ReadJsonFile(dir + "/tokenizer_config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ((*config)["add_bos_token"], false);
  EXPECT_EQ((*config)["add_eos_token"], false);
  EXPECT_EQ((*config)["bos_token"], "<|im_start|>");
  EXPECT_EQ((*config)["eos_token"], "<|im_end|>");
  EXPECT_EQ((*config)["pad_token"], "<|endoftext|>");
  EXPECT_FALSE(config->contains("unk_token"));
  EXPECT_EQ((*config)["chat_template"], "{{ messages }}");

  // The project's own loader takes it: added tokens whole, then digits one
  // by one and GPT-2's split, then merges in rank order (" ab" is Ġ a b ->
  // Ġ ab -> Ġab: "a b" ranks before "Ġ a").
  const TestModelSpec spec;
  auto loaded = LoadTokenizer(dir, spec.Config());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const std::string text = "abc ab<tool>11<|im_end|>";
  auto ids = (*loaded)->EncodePrompt(text);
  ASSERT_TRUE(ids.ok()) << ids.status();
  // abc, Ġab, <tool>, 1, 1, <|im_end|>
  EXPECT_EQ(*ids, (std::vector<int32_t>{11, 12, 3, 8, 8, 2}));
  auto decoded = (*loaded)->Decode(*ids);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, "abc ab<tool>11");  // special tokens decode to nothing
}

TEST_F(GgufTokenizerTest, EachPreTokenizerNameGetsItsSplit) {
  for (const char* name : {"default", "gpt-2"}) {
    const std::string dir = TestDir(name);
    ASSERT_TRUE(WriteGgufTokenizer(Gpt2Metadata(name), "m.gguf", dir).ok());
    const json tokenizer = ReadTokenizerJson(dir);
    EXPECT_EQ(tokenizer["pre_tokenizer"]["type"], "ByteLevel") << name;
    EXPECT_EQ(tokenizer["pre_tokenizer"]["use_regex"], true) << name;
  }

  // No pre-tokenizer named: llama.cpp's "default".
  json unnamed = Gpt2Metadata("");
  unnamed.erase("tokenizer.ggml.pre");
  const std::string unnamed_dir = TestDir("unnamed");
  ASSERT_TRUE(WriteGgufTokenizer(unnamed, "m.gguf", unnamed_dir).ok());
  EXPECT_EQ(ReadTokenizerJson(unnamed_dir)["pre_tokenizer"]["type"],
            "ByteLevel");

  // Llama 3: its own regex, ByteLevel only mapping bytes, whole-word tokens
  // before merges, and a BOS by default.
  const std::string llama3 = TestDir("llama3");
  auto info = WriteGgufTokenizer(Gpt2Metadata("llama-bpe"), "m.gguf", llama3);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(info->add_bos);
  const json tokenizer = ReadTokenizerJson(llama3);
  const json& steps = tokenizer["pre_tokenizer"]["pretokenizers"];
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_EQ(steps[0]["type"], "Split");
  EXPECT_EQ(
      steps[0]["pattern"]["Regex"],
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)");
  EXPECT_EQ(steps[0]["behavior"], "Isolated");
  EXPECT_EQ(steps[0]["invert"], false);
  EXPECT_EQ(steps[1]["type"], "ByteLevel");
  EXPECT_EQ(steps[1]["use_regex"], false);
  EXPECT_EQ(tokenizer["model"]["ignore_merges"], true);
  EXPECT_EQ(ReadJsonFile(llama3 + "/tokenizer_config.json")
                .value_or(json())["add_bos_token"],
            true);

  // Qwen2: NFC first, digits one by one.
  const std::string qwen2 = TestDir("qwen2");
  ASSERT_TRUE(WriteGgufTokenizer(Gpt2Metadata("qwen2"), "m.gguf", qwen2).ok());
  const json qwen = ReadTokenizerJson(qwen2);
  EXPECT_EQ(qwen["normalizer"]["type"], "NFC");
  EXPECT_HAS_SUBSTR(
      qwen["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"]
          .get<std::string>(),
      R"(\p{L}+|\p{N}| ?)");
}

// The message of writing `metadata`, which must fail and write nothing.
std::string ErrorOf(const json& metadata) {
  const std::string dir = TestDir("error") + "/out";
  auto info = WriteGgufTokenizer(metadata, "bad.gguf", dir);
  EXPECT_FALSE(info.ok());
  EXPECT_FALSE(std::filesystem::exists(dir));
  EXPECT_HAS_SUBSTR(info.status().message(), "bad.gguf");
  return std::string(info.status().message());
}

TEST_F(GgufTokenizerTest, UnsupportedTokenizersAreRefusedByName) {
  json metadata = Gpt2Metadata("smollm");
  metadata["tokenizer.ggml.model"] = "bert";
  const std::string model = ErrorOf(metadata);
  EXPECT_HAS_SUBSTR(model, R"(tokenizer.ggml.model "bert" is not supported)");
  EXPECT_HAS_SUBSTR(model, "gpt2");
  EXPECT_HAS_SUBSTR(model, "llama");

  const std::string pre = ErrorOf(Gpt2Metadata("deepseek-v3"));
  EXPECT_HAS_SUBSTR(pre,
                    R"(tokenizer.ggml.pre "deepseek-v3" is not supported)");
  for (const char* name :
       {"default", "gpt-2", "smollm", "llama-bpe", "qwen2"}) {
    EXPECT_HAS_SUBSTR(pre, name);
  }

  json none = Gpt2Metadata("smollm");
  none.erase("tokenizer.ggml.model");
  EXPECT_HAS_SUBSTR(ErrorOf(none), "tokenizer.ggml.model is missing");
}

TEST_F(GgufTokenizerTest, BrokenVocabulariesAreErrorsNamingTheProblem) {
  json metadata = Gpt2Metadata("smollm");
  metadata.erase("tokenizer.ggml.tokens");
  EXPECT_HAS_SUBSTR(ErrorOf(metadata), "tokenizer.ggml.tokens is missing");

  metadata = Gpt2Metadata("smollm");
  metadata["tokenizer.ggml.token_type"].erase(0);
  EXPECT_HAS_SUBSTR(
      ErrorOf(metadata),
      "tokenizer.ggml.token_type has 12 entries but tokenizer.ggml.tokens "
      "has 13");

  metadata = Gpt2Metadata("smollm");
  metadata["tokenizer.ggml.merges"].push_back("a z");
  EXPECT_HAS_SUBSTR(ErrorOf(metadata),
                    R"(tokenizer.ggml.merges[4] "a z" names "z", which is )"
                    "not a token");

  metadata = Gpt2Metadata("smollm");
  metadata["tokenizer.ggml.merges"].push_back("b c");
  EXPECT_HAS_SUBSTR(ErrorOf(metadata), R"(makes "bc", which is not a token)");

  metadata = Gpt2Metadata("smollm");
  metadata["tokenizer.ggml.tokens"][5] = "\xff\xfe";
  const std::string utf8 = ErrorOf(metadata);
  EXPECT_HAS_SUBSTR(
      utf8, R"(tokenizer.ggml.tokens[5] "\xff\xfe" is not valid UTF-8)");

  metadata = Gpt2Metadata("smollm");
  metadata["tokenizer.ggml.tokens"][6] = "a";
  EXPECT_HAS_SUBSTR(ErrorOf(metadata),
                    R"(tokenizer.ggml.tokens[6] "a" repeats token 4)");

  metadata = Gpt2Metadata("smollm");
  metadata["tokenizer.ggml.eos_token_id"] = 13;
  EXPECT_HAS_SUBSTR(
      ErrorOf(metadata),
      "tokenizer.ggml.eos_token_id 13 is outside the vocabulary [0, 13)");

  metadata = Gpt2Metadata("smollm");
  metadata["tokenizer.ggml.token_type"][2] = 9;
  EXPECT_HAS_SUBSTR(ErrorOf(metadata), "tokenizer.ggml.token_type[2] is 9");
}

TEST_F(GgufTokenizerTest, SentencePieceNeedsOneUnknownAndAllBytes) {
  json metadata = {
      {"tokenizer.ggml.model", "llama"},
      {"tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "<0x00>", "▁a"}},
      {"tokenizer.ggml.scores", {0, 0, 0, 0, -1}},
      {"tokenizer.ggml.token_type", {2, 3, 3, 6, 1}},
      {"tokenizer.ggml.bos_token_id", 1}};
  EXPECT_HAS_SUBSTR(ErrorOf(metadata), "marks 1 tokens as bytes");

  metadata["tokenizer.ggml.token_type"] = {2, 3, 3, 1, 2};
  EXPECT_HAS_SUBSTR(ErrorOf(metadata), "marks tokens 0 and 4 unknown");

  metadata["tokenizer.ggml.token_type"] = {1, 3, 3, 1, 1};
  EXPECT_HAS_SUBSTR(ErrorOf(metadata), "marks no token unknown");

  metadata["tokenizer.ggml.token_type"] = {2, 3, 3, 1, 1};
  metadata["tokenizer.ggml.scores"].erase(4);
  EXPECT_HAS_SUBSTR(ErrorOf(metadata), "tokenizer.ggml.scores has 4 entries");

  metadata["tokenizer.ggml.scores"].push_back(-1);
  metadata.erase("tokenizer.ggml.bos_token_id");
  metadata["tokenizer.ggml.add_bos_token"] = true;
  EXPECT_HAS_SUBSTR(ErrorOf(metadata),
                    "tokenizer.ggml.add_bos_token is true but "
                    "tokenizer.ggml.bos_token_id is missing");
}

TEST_F(GgufTokenizerTest, UnwritableDirectoryIsAnError) {
  const std::string dir = TestDir("unwritable");
  ASSERT_TRUE(WriteStringToFile(dir + "/file", "").ok());
  auto info = WriteGgufTokenizer(Gpt2Metadata("smollm"), "model.gguf",
                                 dir + "/file/tokenizer");
  ASSERT_FALSE(info.ok());
  EXPECT_HAS_SUBSTR(info.status().message(),
                    "cannot create directory " + dir + "/file/tokenizer");
}

}  // namespace
}  // namespace moe::testing

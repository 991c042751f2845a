#include "core/tokenizer/gguf_bpe_json.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/util/status_macros.h"

namespace moe::gguf {
namespace {

using nlohmann::json;

json ByteLevel(bool use_regex, bool trim_offsets) {
  json byte_level = json::object();
  byte_level["type"] = "ByteLevel";
  byte_level["add_prefix_space"] = false;
  byte_level["trim_offsets"] = trim_offsets;
  byte_level["use_regex"] = use_regex;
  return byte_level;
}

json IsolatingSplit(const char* regex) {
  json split = json::object();
  split["type"] = "Split";
  split["pattern"] = {{"Regex", regex}};
  split["behavior"] = "Isolated";
  split["invert"] = false;
  return split;
}

json Sequence(std::vector<json> pre_tokenizers) {
  json sequence = json::object();
  sequence["type"] = "Sequence";
  sequence["pretokenizers"] = std::move(pre_tokenizers);
  return sequence;
}

constexpr char kLlama3Regex[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr char kQwen2Regex[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

const std::vector<PreTokenizer>& PreTokenizers() {
  static const std::vector<PreTokenizer> pre_tokenizers = [] {
    json digits = json::object();
    digits["type"] = "Digits";
    digits["individual_digits"] = true;
    json nfc = json::object();
    nfc["type"] = "NFC";
    return std::vector<PreTokenizer>{
        // GPT-2's own regex inside ByteLevel. "default" is what llama.cpp
        // assumes for files that name no pre-tokenizer; it then also splits
        // off punctuation runs and digit triples, a guess of its own, where
        // this takes GPT-2's split, the byte-level BPE baseline.
        {{"default", "gpt-2", "gpt2"},
         nullptr,
         ByteLevel(/*use_regex=*/true, /*trim_offsets=*/true),
         false,
         false},
        // Each digit alone, then GPT-2's regex (StarCoder, SmolLM).
        {{"smollm", "starcoder"},
         nullptr,
         Sequence({digits, ByteLevel(true, true)}),
         false,
         false},
        {{"llama-bpe", "llama3", "llama-v3"},
         nullptr,
         Sequence({IsolatingSplit(kLlama3Regex), ByteLevel(false, true)}),
         true,
         true},
        {{"qwen2"},
         nfc,
         Sequence({IsolatingSplit(kQwen2Regex), ByteLevel(false, false)}),
         false,
         false},
    };
  }();
  return pre_tokenizers;
}

}  // namespace

absl::StatusOr<const PreTokenizer*> FindPreTokenizer(const Metadata& metadata,
                                                     const std::string& name) {
  std::vector<std::string> supported;
  for (const PreTokenizer& pre : PreTokenizers()) {
    for (const std::string& known : pre.names) {
      if (known == name) return &pre;
      supported.push_back(known);
    }
  }
  return metadata.Error(
      kPreKey, absl::StrCat(Quoted(name), " is not supported (supported: ",
                            absl::StrJoin(supported, ", "), ")"));
}

absl::StatusOr<json> BpeTokenizerJson(const Metadata& metadata,
                                      const Vocabulary& vocab,
                                      const PreTokenizer& pre) {
  json token_ids = json::object();
  for (size_t id = 0; id < vocab.tokens.size(); ++id) {
    token_ids[vocab.tokens[id]] = id;
  }

  // The tokenizers library refuses a merge whose parts or result are not
  // tokens; so does this, naming the merge.
  MOE_ASSIGN_OR_RETURN(std::vector<std::string> merges,
                       metadata.Strings(kMergesKey));
  for (size_t i = 0; i < merges.size(); ++i) {
    const std::string& merge = merges[i];
    const std::string where =
        absl::StrCat(kMergesKey, "[", i, "] ", Quoted(merge));
    // Split as llama.cpp splits it: at the first space past the first byte.
    const size_t space = merge.find(' ', 1);
    if (space == std::string::npos) {
      return metadata.Error(where, "is not two tokens separated by a space");
    }
    const std::string left = merge.substr(0, space);
    const std::string right = merge.substr(space + 1);
    for (const std::string& part : {left, right}) {
      if (!token_ids.contains(part)) {
        return metadata.Error(where, absl::StrCat("names ", Quoted(part),
                                                  ", which is not a token"));
      }
    }
    if (!token_ids.contains(left + right)) {
      return metadata.Error(where, absl::StrCat("makes ", Quoted(left + right),
                                                ", which is not a token"));
    }
  }

  // Control and unknown tokens are special (skipped when decoding without
  // special tokens); user-defined ones are plain text matched whole.
  json added_tokens = json::array();
  for (size_t id = 0; id < vocab.tokens.size(); ++id) {
    const int type = vocab.types[id];
    if (type != kControl && type != kUnknown && type != kUserDefined) {
      continue;
    }
    json added = json::object();
    added["id"] = id;
    added["content"] = vocab.tokens[id];
    added["single_word"] = false;
    added["lstrip"] = false;
    added["rstrip"] = false;
    added["normalized"] = false;
    added["special"] = type != kUserDefined;
    added_tokens.push_back(std::move(added));
  }

  json model = json::object();
  model["type"] = "BPE";
  model["dropout"] = nullptr;
  model["unk_token"] = nullptr;
  model["continuing_subword_prefix"] = nullptr;
  model["end_of_word_suffix"] = nullptr;
  model["fuse_unk"] = false;
  model["byte_fallback"] = false;
  model["ignore_merges"] = pre.ignore_merges;
  model["vocab"] = std::move(token_ids);
  model["merges"] = std::move(merges);

  // The post-processor adds no BOS: tokenizer_config.json's add_bos_token
  // says whether prompts start with one.
  json post_processor = ByteLevel(true, false);
  post_processor["add_prefix_space"] = true;
  json decoder = ByteLevel(true, true);
  decoder["add_prefix_space"] = true;

  json tokenizer = json::object();
  tokenizer["version"] = "1.0";
  tokenizer["truncation"] = nullptr;
  tokenizer["padding"] = nullptr;
  tokenizer["added_tokens"] = std::move(added_tokens);
  tokenizer["normalizer"] = pre.normalizer;
  tokenizer["pre_tokenizer"] = pre.pre_tokenizer;
  tokenizer["post_processor"] = std::move(post_processor);
  tokenizer["decoder"] = std::move(decoder);
  tokenizer["model"] = std::move(model);
  return tokenizer;
}

}  // namespace moe::gguf

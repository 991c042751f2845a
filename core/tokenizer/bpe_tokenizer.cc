#include "core/tokenizer/bpe_tokenizer.h"

#include <algorithm>
#include <limits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/tokenizer/added_tokens.h"
#include "core/tokenizer/bpe_model.h"
#include "core/tokenizer/bpe_pre_tokenizer.h"
#include "core/tokenizer/byte_level.h"
#include "core/tokenizer/tokenizer_json.h"
#include "core/tokenizer/utf8.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"

namespace moe {
namespace {

class BpeTokenizer final : public Tokenizer {
 public:
  // `token_bytes`: by id, what the token decodes to; nullopt where no token
  // has the id.
  BpeTokenizer(BpeModel model, PreTokenizer pre_tokenizer,
               AddedTokens added_tokens,
               std::vector<std::optional<std::string>> token_bytes, int bos_id)
      : model_(std::move(model)),
        pre_tokenizer_(std::move(pre_tokenizer)),
        added_tokens_(std::move(added_tokens)),
        token_bytes_(std::move(token_bytes)) {
    bos_id_ = bos_id;
  }

  absl::StatusOr<std::vector<int32_t>> Encode(
      std::string_view text) const override {
    const std::string valid = ReplaceInvalidUtf8(text);
    std::vector<int32_t> ids;
    for (const AddedTokens::Segment& segment : added_tokens_.Split(valid)) {
      if (segment.id >= 0) {
        ids.push_back(segment.id);
        continue;
      }
      MOE_ASSIGN_OR_RETURN(const std::vector<std::string> words,
                           pre_tokenizer_.Split(segment.text));
      for (const std::string& word : words) model_.Encode(word, &ids);
    }
    return ids;
  }

  absl::StatusOr<std::string> Decode(
      std::span<const int32_t> ids) const override {
    std::string bytes;
    for (const int32_t id : ids) {
      if (id < 0 || id >= vocab_size()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "token id ", id, " is outside the tokenizer's vocabulary [0, ",
            vocab_size(), ")"));
      }
      if (!token_bytes_[id].has_value()) {
        return absl::InvalidArgumentError(
            absl::StrCat("token id ", id, " names no token of the tokenizer"));
      }
      bytes += *token_bytes_[id];
    }
    return ReplaceInvalidUtf8(bytes);
  }

  int vocab_size() const override {
    return static_cast<int>(token_bytes_.size());
  }

 private:
  BpeModel model_;
  PreTokenizer pre_tokenizer_;
  AddedTokens added_tokens_;
  std::vector<std::optional<std::string>> token_bytes_;
};

struct AddedToken {
  std::string content;
  int32_t id;
  bool special;
  bool normalized;
};

absl::StatusOr<AddedToken> ReadAddedToken(const TokenizerJson& json) {
  MOE_ASSIGN_OR_RETURN(const TokenizerJson id, json.Get("id"));
  if (!id.value().is_number_integer() || id.value().get<int64_t>() < 0 ||
      id.value().get<int64_t>() > BpeModel::kMaxTokenId) {
    return id.Error(absl::StrCat("expected an integer in [0, ",
                                 BpeModel::kMaxTokenId, "], got ",
                                 id.value().dump()));
  }
  AddedToken token;
  token.id = id.value().get<int32_t>();
  MOE_ASSIGN_OR_RETURN(token.content, json.String("content"));
  if (token.content.empty()) return json.Error("empty content");
  MOE_ASSIGN_OR_RETURN(token.special, json.Bool("special", false));
  MOE_ASSIGN_OR_RETURN(token.normalized,
                       json.Bool("normalized", !token.special));
  for (const char* option : {"lstrip", "rstrip", "single_word"}) {
    MOE_ASSIGN_OR_RETURN(const bool set, json.Bool(option, false));
    if (set) {
      return json.Error(absl::StrCat(
          option, ": true is not supported (token \"", token.content, "\")"));
    }
  }
  return token;
}

// tokenizers does not take the ids of added tokens from the file: it gives
// each the id its content already has (in the vocab or an earlier added
// token), or else the next id past the vocab's size and the ids given so far.
// A file stating other ids would encode with ids it does not state, so it is
// rejected rather than guessed at.
absl::StatusOr<std::vector<AddedToken>> ReadAddedTokens(
    const TokenizerJson& root,
    const absl::flat_hash_map<std::string, int32_t>& vocab) {
  std::vector<AddedToken> tokens;
  const std::optional<TokenizerJson> list = root.Find("added_tokens");
  if (!list.has_value()) return tokens;
  MOE_RETURN_IF_ERROR(list->ExpectArray());
  absl::flat_hash_map<std::string, int32_t> given;
  int32_t max_given = -1;
  for (size_t i = 0; i < list->value().size(); ++i) {
    const TokenizerJson json = list->Element(i);
    MOE_ASSIGN_OR_RETURN(AddedToken token, ReadAddedToken(json));
    int32_t expected =
        std::max(max_given + 1, static_cast<int32_t>(vocab.size()));
    if (const auto it = given.find(token.content); it != given.end()) {
      expected = it->second;
    } else if (const auto it = vocab.find(token.content); it != vocab.end()) {
      expected = it->second;
    }
    if (token.id != expected) {
      return json.Error(absl::StrCat("\"", token.content, "\" has id ",
                                     token.id, " but tokenizers gives it ",
                                     expected));
    }
    given[token.content] = token.id;
    max_given = std::max(max_given, token.id);
    tokens.push_back(std::move(token));
  }
  return tokens;
}

// The id that `processor` puts before a single sequence, -1 for none.
absl::StatusOr<int> TemplateBos(const TokenizerJson& processor) {
  MOE_ASSIGN_OR_RETURN(const std::string type, processor.Type());
  if (type == "ByteLevel") return -1;  // adjusts offsets only
  if (type == "Sequence") {
    MOE_ASSIGN_OR_RETURN(const TokenizerJson list, processor.Get("processors"));
    MOE_RETURN_IF_ERROR(list.ExpectArray());
    int bos = -1;
    for (size_t i = 0; i < list.value().size(); ++i) {
      MOE_ASSIGN_OR_RETURN(const int id, TemplateBos(list.Element(i)));
      if (bos < 0) bos = id;
    }
    return bos;
  }
  if (type != "TemplateProcessing") {
    return processor.Error(absl::StrCat(
        "unsupported post_processor type \"", type,
        "\" (supported: ByteLevel, TemplateProcessing, Sequence)"));
  }
  MOE_ASSIGN_OR_RETURN(const TokenizerJson single, processor.Get("single"));
  MOE_RETURN_IF_ERROR(single.ExpectArray());
  if (single.value().empty()) return -1;
  const std::optional<TokenizerJson> special =
      single.Element(0).Find("SpecialToken");
  if (!special.has_value()) return -1;  // the sequence comes first
  MOE_ASSIGN_OR_RETURN(const std::string name, special->String("id"));
  MOE_ASSIGN_OR_RETURN(const TokenizerJson specials,
                       processor.Get("special_tokens"));
  MOE_ASSIGN_OR_RETURN(const TokenizerJson entry, specials.Get(name.c_str()));
  MOE_ASSIGN_OR_RETURN(const TokenizerJson ids, entry.Get("ids"));
  if (!ids.value().is_array() || ids.value().size() != 1 ||
      !ids.value()[0].is_number_integer() || ids.value()[0] < 0 ||
      ids.value()[0] > std::numeric_limits<int32_t>::max()) {
    return ids.Error(absl::StrCat("expected the one id of \"", name, "\", got ",
                                  ids.value().dump()));
  }
  return ids.value()[0].get<int>();
}

absl::Status CheckNormalizerAndDecoder(const TokenizerJson& root) {
  if (const auto normalizer = root.Find("normalizer")) {
    MOE_ASSIGN_OR_RETURN(const std::string type, normalizer->Type());
    return normalizer->Error(
        absl::StrCat("type \"", type, "\" is not supported; expected null"));
  }
  MOE_ASSIGN_OR_RETURN(const TokenizerJson decoder, root.Get("decoder"));
  MOE_ASSIGN_OR_RETURN(const std::string type, decoder.Type());
  if (type != "ByteLevel") {
    return decoder.Error(absl::StrCat(
        "type \"", type, "\" is not supported; expected ByteLevel"));
  }
  return absl::OkStatus();
}

// By id, the bytes each token decodes to, as tokenizers' decode with
// skip_special_tokens: special added tokens to nothing. nullopt where no
// token has the id.
std::vector<std::optional<std::string>> TokenBytes(
    const BpeModel& model, const std::vector<AddedToken>& added) {
  int32_t max_id = -1;
  for (const auto& [token, id] : model.vocab()) max_id = std::max(max_id, id);
  for (const AddedToken& token : added) max_id = std::max(max_id, token.id);
  std::vector<std::optional<std::string>> token_bytes(max_id + 1);
  // A token outside the byte-level alphabet decodes to its own text, as in
  // tokenizers' ByteLevel decoder.
  auto bytes_of = [](const std::string& token) {
    return ByteLevelToBytes(token).value_or(token);
  };
  for (const auto& [token, id] : model.vocab()) {
    token_bytes[id] = bytes_of(token);
  }
  // An added token's content goes first, as in tokenizers.
  for (const AddedToken& token : added) {
    token_bytes[token.id] = token.special ? "" : bytes_of(token.content);
  }
  return token_bytes;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> FromJson(const TokenizerJson& root,
                                                    std::optional<int> bos_id) {
  MOE_RETURN_IF_ERROR(root.ExpectObject());
  MOE_RETURN_IF_ERROR(CheckNormalizerAndDecoder(root));
  MOE_ASSIGN_OR_RETURN(const TokenizerJson model_json, root.Get("model"));
  MOE_ASSIGN_OR_RETURN(BpeModel model, BpeModel::FromJson(model_json));
  MOE_ASSIGN_OR_RETURN(const TokenizerJson pre_tokenizer_json,
                       root.Get("pre_tokenizer"));
  MOE_ASSIGN_OR_RETURN(PreTokenizer pre_tokenizer,
                       PreTokenizer::FromJson(pre_tokenizer_json));
  if (!pre_tokenizer.has_byte_level()) {
    return pre_tokenizer_json.Error(
        "no ByteLevel pre-tokenizer: the vocabulary would not be byte-level");
  }
  MOE_ASSIGN_OR_RETURN(const std::vector<AddedToken> added,
                       ReadAddedTokens(root, model.vocab()));
  std::vector<std::optional<std::string>> token_bytes =
      TokenBytes(model, added);
  std::vector<AddedTokens::Token> matched;
  for (const AddedToken& token : added) {
    matched.push_back({token.content, token.id, token.normalized});
  }

  int bos = -1;
  if (const auto processor = root.Find("post_processor")) {
    MOE_ASSIGN_OR_RETURN(bos, TemplateBos(*processor));
    if (bos >= static_cast<int>(token_bytes.size()) ||
        (bos >= 0 && !token_bytes[bos].has_value())) {
      return processor->Error(
          absl::StrCat("its BOS id ", bos, " names no token"));
    }
  }
  return std::make_unique<BpeTokenizer>(
      std::move(model), std::move(pre_tokenizer),
      AddedTokens(std::move(matched)), std::move(token_bytes),
      bos_id.value_or(bos));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadBpeTokenizer(
    const std::string& path, std::optional<int> bos_id) {
  MOE_ASSIGN_OR_RETURN(const nlohmann::json json, ReadJsonFile(path));
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer =
      FromJson(TokenizerJson(json, ""), bos_id);
  if (!tokenizer.ok()) {
    return absl::Status(tokenizer.status().code(),
                        absl::StrCat(path, ": ", tokenizer.status().message()));
  }
  return tokenizer;
}

}  // namespace moe

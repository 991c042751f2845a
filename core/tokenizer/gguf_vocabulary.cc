#include "core/tokenizer/gguf_vocabulary.h"

#include <algorithm>
#include <limits>
#include <string_view>
#include <unordered_map>

#include "absl/strings/escaping.h"
#include "core/tokenizer/utf8.h"
#include "core/util/status_macros.h"

namespace moe::gguf {
namespace {

std::optional<int64_t> AsInt64(const nlohmann::json& value) {
  if (value.is_number_unsigned()) {
    const uint64_t v = value.get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return std::nullopt;
    }
    return static_cast<int64_t>(v);
  }
  if (value.is_number_integer()) return value.get<int64_t>();
  return std::nullopt;
}

}  // namespace

std::string Quoted(absl::string_view text) {
  return absl::StrCat("\"",
                      IsValidUtf8(std::string_view(text.data(), text.size()))
                          ? absl::Utf8SafeCHexEscape(text)
                          : absl::CHexEscape(text),
                      "\"");
}

absl::StatusOr<std::optional<std::string>> Metadata::String(
    absl::string_view key) const {
  const nlohmann::json* value = Find(key);
  if (value == nullptr) return std::nullopt;
  if (!value->is_string()) return Error(key, "is not a string");
  std::string text = value->get<std::string>();
  if (!IsValidUtf8(std::string_view(text.data(), text.size())))
    return Error(key, "is not valid UTF-8");
  return text;
}

absl::StatusOr<bool> Metadata::Bool(absl::string_view key,
                                    bool fallback) const {
  const nlohmann::json* value = Find(key);
  if (value == nullptr) return fallback;
  if (!value->is_boolean()) return Error(key, "is not a bool");
  return value->get<bool>();
}

absl::StatusOr<std::optional<int64_t>> Metadata::Int(
    absl::string_view key) const {
  const nlohmann::json* value = Find(key);
  if (value == nullptr) return std::nullopt;
  std::optional<int64_t> number = AsInt64(*value);
  if (!number) return Error(key, "is not an integer");
  return number;
}

absl::StatusOr<std::optional<int>> Metadata::TokenId(absl::string_view key,
                                                     int vocab_size) const {
  MOE_ASSIGN_OR_RETURN(std::optional<int64_t> id, Int(key));
  if (!id) return std::nullopt;
  if (*id < 0 || *id >= vocab_size) {
    return Error(key, absl::StrCat(*id, " is outside the vocabulary [0, ",
                                   vocab_size, ")"));
  }
  return static_cast<int>(*id);
}

absl::StatusOr<std::vector<std::string>> Metadata::Strings(
    absl::string_view key) const {
  return Array<std::string>(
      key, "a string",
      [](const nlohmann::json& v) -> std::optional<std::string> {
        if (!v.is_string()) return std::nullopt;
        return v.get<std::string>();
      });
}

absl::StatusOr<std::vector<int64_t>> Metadata::Integers(
    absl::string_view key) const {
  return Array<int64_t>(key, "an integer", AsInt64);
}

absl::StatusOr<std::vector<float>> Metadata::Numbers(
    absl::string_view key) const {
  return Array<float>(key, "a number",
                      [](const nlohmann::json& v) -> std::optional<float> {
                        if (!v.is_number()) return std::nullopt;
                        return v.get<float>();
                      });
}

absl::StatusOr<Vocabulary> ReadVocabulary(const Metadata& metadata,
                                          bool add_bos_default) {
  Vocabulary vocab;
  MOE_ASSIGN_OR_RETURN(vocab.tokens, metadata.Strings(kTokensKey));
  const int size = static_cast<int>(vocab.tokens.size());
  if (size == 0) return metadata.Error(kTokensKey, "is empty");
  std::unordered_map<std::string_view, int> seen;
  for (int id = 0; id < size; ++id) {
    const std::string& token = vocab.tokens[id];
    const std::string where = absl::StrCat(kTokensKey, "[", id, "]");
    if (token.empty()) return metadata.Error(where, "is empty");
    if (!IsValidUtf8(std::string_view(token.data(), token.size()))) {
      return metadata.Error(where,
                            absl::StrCat(Quoted(token), " is not valid UTF-8"));
    }
    const auto [it, inserted] = seen.emplace(token, id);
    if (!inserted) {
      return metadata.Error(
          where, absl::StrCat(Quoted(token), " repeats token ", it->second));
    }
  }

  MOE_ASSIGN_OR_RETURN(std::vector<int64_t> types,
                       metadata.Integers(kTypesKey));
  if (types.size() != vocab.tokens.size()) {
    return metadata.Error(kTypesKey,
                          absl::StrCat("has ", types.size(), " entries but ",
                                       kTokensKey, " has ", size));
  }
  for (int id = 0; id < size; ++id) {
    if (types[id] < kNormal || types[id] > kByte) {
      return metadata.Error(
          absl::StrCat(kTypesKey, "[", id, "]"),
          absl::StrCat("is ", types[id], ", not a token type (1 to 6)"));
    }
    vocab.types.push_back(static_cast<int>(types[id]));
  }

  MOE_ASSIGN_OR_RETURN(vocab.bos,
                       metadata.TokenId("tokenizer.ggml.bos_token_id", size));
  MOE_ASSIGN_OR_RETURN(vocab.eos,
                       metadata.TokenId("tokenizer.ggml.eos_token_id", size));
  MOE_ASSIGN_OR_RETURN(
      vocab.unk, metadata.TokenId("tokenizer.ggml.unknown_token_id", size));
  MOE_ASSIGN_OR_RETURN(
      vocab.pad, metadata.TokenId("tokenizer.ggml.padding_token_id", size));
  MOE_ASSIGN_OR_RETURN(std::optional<int> eot,
                       metadata.TokenId("tokenizer.ggml.eot_token_id", size));
  MOE_ASSIGN_OR_RETURN(std::optional<int> eom,
                       metadata.TokenId("tokenizer.ggml.eom_token_id", size));
  for (const std::optional<int>& id : {vocab.eos, eot, eom}) {
    if (id && std::find(vocab.eos_ids.begin(), vocab.eos_ids.end(), *id) ==
                  vocab.eos_ids.end()) {
      vocab.eos_ids.push_back(*id);
    }
  }

  // Without a BOS token there is none to add, whatever the default; a file
  // that asks for one anyway is refused, as llama.cpp refuses it.
  MOE_ASSIGN_OR_RETURN(vocab.add_bos,
                       metadata.Bool("tokenizer.ggml.add_bos_token",
                                     add_bos_default && vocab.bos.has_value()));
  if (vocab.add_bos && !vocab.bos) {
    return metadata.Error("tokenizer.ggml.add_bos_token",
                          "is true but tokenizer.ggml.bos_token_id is missing");
  }
  MOE_ASSIGN_OR_RETURN(vocab.add_eos,
                       metadata.Bool("tokenizer.ggml.add_eos_token", false));
  if (vocab.add_eos && !vocab.eos) {
    return metadata.Error("tokenizer.ggml.add_eos_token",
                          "is true but tokenizer.ggml.eos_token_id is missing");
  }

  MOE_ASSIGN_OR_RETURN(vocab.chat_template,
                       metadata.String("tokenizer.chat_template"));
  MOE_ASSIGN_OR_RETURN(std::optional<std::string> architecture,
                       metadata.String("general.architecture"));
  if (architecture) {
    MOE_ASSIGN_OR_RETURN(vocab.context_length,
                         metadata.Int(*architecture + ".context_length"));
  }
  return vocab;
}

}  // namespace moe::gguf

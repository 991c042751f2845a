#ifndef MOE_CORE_TOKENIZER_GGUF_VOCABULARY_H_
#define MOE_CORE_TOKENIZER_GGUF_VOCABULARY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/tokenizer/utf8.h"
#include "core/util/status_macros.h"
#include "nlohmann/json.hpp"

// The tokenizer in a GGUF file's metadata (the `tokenizer.ggml.*` keys), read
// and validated for writing it back in the form it was converted from:
// tokenizer.json (gguf_bpe_json.h) or tokenizer.model
// (gguf_sentencepiece_model.h); gguf_tokenizer.h writes the files.
namespace moe::gguf {

inline constexpr char kModelKey[] = "tokenizer.ggml.model";
inline constexpr char kPreKey[] = "tokenizer.ggml.pre";
inline constexpr char kTokensKey[] = "tokenizer.ggml.tokens";
inline constexpr char kTypesKey[] = "tokenizer.ggml.token_type";
inline constexpr char kScoresKey[] = "tokenizer.ggml.scores";
inline constexpr char kMergesKey[] = "tokenizer.ggml.merges";

// GGUF token types (llama.cpp's llama_token_type). They are SentencePiece's
// piece types, with the same numbers.
enum TokenType : int {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// `text` quoted for an error message: control characters escaped, and every
// byte past ASCII too when it is not UTF-8.
std::string Quoted(absl::string_view text);

// The value of an integer JSON number; nullopt for anything else, or beyond
// int64.
std::optional<int64_t> AsInt64(const nlohmann::json& value);

// Typed access to the GGUF metadata; every error names the file and the key.
class Metadata {
 public:
  Metadata(const nlohmann::json& metadata, const std::string& source)
      : metadata_(metadata), source_(source) {}

  absl::Status Error(absl::string_view key, absl::string_view problem) const {
    return absl::InvalidArgumentError(
        absl::StrCat(source_, ": ", key, " ", problem));
  }

  // Absent keys are nullopt; present ones must have the right type.
  absl::StatusOr<std::optional<std::string>> String(
      absl::string_view key) const {
    const nlohmann::json* value = Find(key);
    if (value == nullptr) return std::nullopt;
    if (!value->is_string()) return Error(key, "is not a string");
    std::string text = value->get<std::string>();
    if (!IsValidUtf8(std::string_view(text.data(), text.size())))
      return Error(key, "is not valid UTF-8");
    return text;
  }

  absl::StatusOr<bool> Bool(absl::string_view key, bool fallback) const {
    const nlohmann::json* value = Find(key);
    if (value == nullptr) return fallback;
    if (!value->is_boolean()) return Error(key, "is not a bool");
    return value->get<bool>();
  }

  absl::StatusOr<std::optional<int64_t>> Int(absl::string_view key) const {
    const nlohmann::json* value = Find(key);
    if (value == nullptr) return std::nullopt;
    std::optional<int64_t> number = AsInt64(*value);
    if (!number) return Error(key, "is not an integer");
    return number;
  }

  // A token id, which must lie in [0, vocab_size).
  absl::StatusOr<std::optional<int>> TokenId(absl::string_view key,
                                             int vocab_size) const {
    MOE_ASSIGN_OR_RETURN(std::optional<int64_t> id, Int(key));
    if (!id) return std::nullopt;
    if (*id < 0 || *id >= vocab_size) {
      return Error(key, absl::StrCat(*id, " is outside the vocabulary [0, ",
                                     vocab_size, ")"));
    }
    return static_cast<int>(*id);
  }

  // A required array, each element converted by `convert`, which returns
  // nullopt for an element of the wrong type, described by `element`.
  template <typename T, typename Convert>
  absl::StatusOr<std::vector<T>> Array(absl::string_view key,
                                       absl::string_view element,
                                       Convert convert) const {
    const nlohmann::json* value = Find(key);
    if (value == nullptr) return Error(key, "is missing");
    if (!value->is_array()) return Error(key, "is not an array");
    std::vector<T> result;
    result.reserve(value->size());
    for (const nlohmann::json& item : *value) {
      std::optional<T> converted = convert(item);
      if (!converted) {
        return Error(absl::StrCat(key, "[", result.size(), "]"),
                     absl::StrCat("is not ", element));
      }
      result.push_back(std::move(*converted));
    }
    return result;
  }

  absl::StatusOr<std::vector<std::string>> Strings(
      absl::string_view key) const {
    return Array<std::string>(
        key, "a string",
        [](const nlohmann::json& v) -> std::optional<std::string> {
          if (!v.is_string()) return std::nullopt;
          return v.get<std::string>();
        });
  }

  absl::StatusOr<std::vector<int64_t>> Integers(absl::string_view key) const {
    return Array<int64_t>(key, "an integer", AsInt64);
  }

  absl::StatusOr<std::vector<float>> Numbers(absl::string_view key) const {
    return Array<float>(key, "a number",
                        [](const nlohmann::json& v) -> std::optional<float> {
                          if (!v.is_number()) return std::nullopt;
                          return v.get<float>();
                        });
  }

 private:
  const nlohmann::json* Find(absl::string_view key) const {
    const auto it = metadata_.find(std::string(key));
    return it == metadata_.end() ? nullptr : &*it;
  }

  const nlohmann::json& metadata_;
  const std::string& source_;
};

// The metadata both formats need, validated: every token is non-empty,
// unique, valid UTF-8 and typed; every special id lies in the vocabulary.
struct Vocabulary {
  std::vector<std::string> tokens;
  std::vector<int> types;
  std::optional<int> bos, eos, unk, pad;
  std::vector<int> eos_ids;  // EOS, end of turn, end of message
  bool add_bos = false;
  bool add_eos = false;
  std::optional<std::string> chat_template;
  std::optional<int64_t> context_length;
};

// Reads and validates the vocabulary; `add_bos_default` is what a file
// without tokenizer.ggml.add_bos_token means.
absl::StatusOr<Vocabulary> ReadVocabulary(const Metadata& metadata,
                                          bool add_bos_default);

}  // namespace moe::gguf

#endif  // MOE_CORE_TOKENIZER_GGUF_VOCABULARY_H_

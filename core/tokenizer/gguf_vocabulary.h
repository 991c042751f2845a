#ifndef MOE_CORE_TOKENIZER_GGUF_VOCABULARY_H_
#define MOE_CORE_TOKENIZER_GGUF_VOCABULARY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
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
      absl::string_view key) const;

  absl::StatusOr<bool> Bool(absl::string_view key, bool fallback) const;

  absl::StatusOr<std::optional<int64_t>> Int(absl::string_view key) const;

  // A token id, which must lie in [0, vocab_size).
  absl::StatusOr<std::optional<int>> TokenId(absl::string_view key,
                                             int vocab_size) const;

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

  absl::StatusOr<std::vector<std::string>> Strings(absl::string_view key) const;

  absl::StatusOr<std::vector<int64_t>> Integers(absl::string_view key) const;

  absl::StatusOr<std::vector<float>> Numbers(absl::string_view key) const;

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

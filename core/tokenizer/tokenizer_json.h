#ifndef MOE_CORE_TOKENIZER_TOKENIZER_JSON_H_
#define MOE_CORE_TOKENIZER_TOKENIZER_JSON_H_

#include <cstddef>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace moe {

// A value inside a Hugging Face `tokenizer.json` together with where it is
// ("model.merges[3]"), so that every error names the field it is about.
// Refers to the parsed document, which must outlive it.
class TokenizerJson {
 public:
  TokenizerJson(const nlohmann::json& value, std::string path)
      : value_(&value), path_(std::move(path)) {}

  const nlohmann::json& value() const { return *value_; }
  const std::string& path() const { return path_; }

  // InvalidArgument "<path>: <what>" ("<what>" at the top level).
  absl::Status Error(absl::string_view what) const;

  // The member `key` of this object; nullopt when absent or null (as
  // tokenizers reads them too).
  std::optional<TokenizerJson> Find(const char* key) const;
  // The member `key`; an error when absent or null.
  absl::StatusOr<TokenizerJson> Get(const char* key) const;
  TokenizerJson Element(size_t index) const;

  // Typed members. `Bool` and `OptionalString` accept absent or null.
  absl::StatusOr<bool> Bool(const char* key, bool if_absent) const;
  absl::StatusOr<std::string> String(const char* key) const;
  absl::StatusOr<std::optional<std::string>> OptionalString(
      const char* key) const;

  // An error unless this is an object; its "type" otherwise.
  absl::StatusOr<std::string> Type() const;

  // `value()` as an object, an array or a string; errors say what it is.
  absl::Status ExpectObject() const;
  absl::Status ExpectArray() const;
  absl::StatusOr<std::string> AsString() const;

 private:
  std::string MemberPath(const char* key) const;

  const nlohmann::json* value_;
  std::string path_;
};

}  // namespace moe

#endif  // MOE_CORE_TOKENIZER_TOKENIZER_JSON_H_

#include "core/tokenizer/tokenizer_json.h"

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"

namespace moe {
namespace {

// `value` as JSON text, cut short: errors about a whole vocabulary stay short.
std::string Abbreviated(const nlohmann::json& value) {
  constexpr size_t kMaxChars = 60;
  std::string text = value.dump();
  if (text.size() <= kMaxChars) return text;
  size_t cut = kMaxChars;
  while (cut > 0 && (text[cut] & 0xC0) == 0x80) --cut;  // whole characters
  return absl::StrCat(text.substr(0, cut), "...");
}

}  // namespace

absl::Status TokenizerJson::Error(absl::string_view what) const {
  if (path_.empty()) return absl::InvalidArgumentError(what);
  return absl::InvalidArgumentError(absl::StrCat(path_, ": ", what));
}

std::string TokenizerJson::MemberPath(const char* key) const {
  return path_.empty() ? std::string(key) : absl::StrCat(path_, ".", key);
}

std::optional<TokenizerJson> TokenizerJson::Find(const char* key) const {
  if (!value_->is_object()) return std::nullopt;
  const auto it = value_->find(key);
  if (it == value_->end() || it->is_null()) return std::nullopt;
  return TokenizerJson(*it, MemberPath(key));
}

absl::StatusOr<TokenizerJson> TokenizerJson::Get(const char* key) const {
  MOE_RETURN_IF_ERROR(ExpectObject());
  std::optional<TokenizerJson> member = Find(key);
  if (!member.has_value()) {
    return Error(absl::StrCat("missing \"", key, "\""));
  }
  return *member;
}

TokenizerJson TokenizerJson::Element(size_t index) const {
  return TokenizerJson(value_->at(index), absl::StrCat(path_, "[", index, "]"));
}

absl::StatusOr<bool> TokenizerJson::Bool(const char* key,
                                         bool if_absent) const {
  const std::optional<TokenizerJson> member = Find(key);
  if (!member.has_value()) return if_absent;
  if (!member->value().is_boolean()) {
    return member->Error(absl::StrCat("expected true or false, got ",
                                      Abbreviated(member->value())));
  }
  return member->value().get<bool>();
}

absl::StatusOr<std::string> TokenizerJson::String(const char* key) const {
  MOE_ASSIGN_OR_RETURN(const TokenizerJson member, Get(key));
  return member.AsString();
}

absl::StatusOr<std::optional<std::string>> TokenizerJson::OptionalString(
    const char* key) const {
  const std::optional<TokenizerJson> member = Find(key);
  if (!member.has_value()) return std::nullopt;
  return member->AsString();
}

absl::StatusOr<std::string> TokenizerJson::Type() const {
  return String("type");
}

absl::Status TokenizerJson::ExpectObject() const {
  if (value_->is_object()) return absl::OkStatus();
  return Error(absl::StrCat("expected an object, got ", Abbreviated(*value_)));
}

absl::Status TokenizerJson::ExpectArray() const {
  if (value_->is_array()) return absl::OkStatus();
  return Error(absl::StrCat("expected an array, got ", Abbreviated(*value_)));
}

absl::StatusOr<std::string> TokenizerJson::AsString() const {
  if (!value_->is_string()) {
    return Error(absl::StrCat("expected a string, got ", Abbreviated(*value_)));
  }
  return value_->get<std::string>();
}

}  // namespace moe

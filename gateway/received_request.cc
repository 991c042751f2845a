#include "gateway/received_request.h"

#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/tokenizer/utf8.h"
#include "google/protobuf/unknown_field_set.h"

namespace moe {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::UnknownField;
using google::protobuf::UnknownFieldSet;

// The path of the first string field under `fields` that is not UTF-8, if
// any, with `prefix` before it.
std::optional<std::string> FirstInvalidString(const Descriptor& descriptor,
                                              const UnknownFieldSet& fields,
                                              const std::string& prefix) {
  std::vector<int> seen(descriptor.field_count(), 0);  // index of repeats
  for (int i = 0; i < fields.field_count(); ++i) {
    const UnknownField& field = fields.field(i);
    const FieldDescriptor* known = descriptor.FindFieldByNumber(field.number());
    if (known == nullptr ||
        field.type() != UnknownField::TYPE_LENGTH_DELIMITED) {
      continue;
    }
    std::string path = absl::StrCat(prefix, known->name());
    if (known->is_repeated()) {
      absl::StrAppend(&path, "[", seen[known->index()]++, "]");
    }
    if (known->type() == FieldDescriptor::TYPE_STRING &&
        !IsValidUtf8(field.length_delimited())) {
      return path;
    }
    if (known->type() == FieldDescriptor::TYPE_MESSAGE) {
      UnknownFieldSet nested;
      if (!nested.ParseFromString(field.length_delimited())) continue;
      std::optional<std::string> found = FirstInvalidString(
          *known->message_type(), nested, absl::StrCat(path, "."));
      if (found.has_value()) return found;
    }
  }
  return std::nullopt;
}

}  // namespace

absl::Status DescribeUnparseable(const Descriptor& descriptor,
                                 absl::string_view bytes) {
  UnknownFieldSet fields;
  if (fields.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    if (std::optional<std::string> field =
            FirstInvalidString(descriptor, fields, "");
        field.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat(*field, ": not valid UTF-8"));
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("request: ", bytes.size(), " bytes that are not a valid ",
                   descriptor.full_name(), " message"));
}

}  // namespace moe

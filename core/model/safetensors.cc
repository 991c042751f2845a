#include "core/model/safetensors.h"

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace moe {
namespace {

// Headers of real checkpoints are a few MB; anything near this is corrupt.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

absl::Status Corrupt(const std::string& path, const std::string& what) {
  return absl::DataLossError(
      absl::StrCat(path, ": corrupt safetensors file: ", what));
}

absl::StatusOr<TensorView> ParseTensorEntry(const std::string& path,
                                            const std::string& name,
                                            const nlohmann::json& entry,
                                            const uint8_t* data_start,
                                            uint64_t data_size) {
  auto fail = [&](const std::string& what) {
    return Corrupt(path, absl::StrCat("tensor ", name, ": ", what));
  };
  if (!entry.is_object()) return fail("entry is not an object");
  const auto dtype_it = entry.find("dtype");
  const auto shape_it = entry.find("shape");
  const auto offsets_it = entry.find("data_offsets");
  if (dtype_it == entry.end() || !dtype_it->is_string()) {
    return fail("missing dtype");
  }
  if (shape_it == entry.end() || !shape_it->is_array()) {
    return fail("missing shape");
  }
  if (offsets_it == entry.end() || !offsets_it->is_array() ||
      offsets_it->size() != 2 || !(*offsets_it)[0].is_number_unsigned() ||
      !(*offsets_it)[1].is_number_unsigned()) {
    return fail("data_offsets must be two unsigned integers");
  }
  absl::StatusOr<DType> dtype = ParseDType(dtype_it->get<std::string>());
  if (!dtype.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": tensor ", name, ": ", dtype.status().message()));
  }
  TensorView view;
  view.name = name;
  view.file = path;
  view.dtype = *dtype;
  uint64_t elements = 1;
  for (const nlohmann::json& dim : *shape_it) {
    if (!dim.is_number_unsigned())
      return fail("shape has a negative or non-integer dimension");
    const uint64_t size = dim.get<uint64_t>();
    if (size != 0 && elements > (1ull << 48) / size)
      return fail("shape too large");
    elements *= size;
    view.shape.push_back(static_cast<int64_t>(size));
  }
  const uint64_t begin = (*offsets_it)[0].get<uint64_t>();
  const uint64_t end = (*offsets_it)[1].get<uint64_t>();
  const uint64_t expected = elements * DTypeSize(view.dtype);
  if (end < begin || end - begin != expected) {
    return fail(absl::StrCat("data_offsets [", begin, ", ", end, ") hold ",
                             end < begin ? 0 : end - begin, " bytes, shape [",
                             absl::StrJoin(view.shape, ", "), "] of ",
                             DTypeName(view.dtype), " needs ", expected));
  }
  if (end > data_size) {
    return absl::DataLossError(absl::StrCat(
        path, ": truncated: tensor ", name, " ends at byte ", end,
        " of the data section but the file holds only ", data_size));
  }
  view.data = data_start + begin;
  view.num_bytes = expected;
  return view;
}

}  // namespace

int64_t TensorView::num_elements() const {
  int64_t count = 1;
  for (int64_t dim : shape) count *= dim;
  return count;
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(
    const std::string& path) {
  absl::StatusOr<std::unique_ptr<MappedFile>> mapped = MappedFile::Open(path);
  if (!mapped.ok()) return mapped.status();
  std::unique_ptr<SafetensorsFile> file(
      new SafetensorsFile(std::move(*mapped)));
  const uint8_t* bytes = file->file_->data();
  const uint64_t size = file->file_->size();
  if (size < 8) {
    return absl::DataLossError(
        absl::StrCat(path, ": truncated: ", size,
                     " bytes, shorter than the 8-byte header length"));
  }
  uint64_t header_size;
  std::memcpy(&header_size, bytes, 8);  // little-endian, as are all targets
  if (header_size > kMaxHeaderBytes) {
    return Corrupt(
        path, absl::StrCat("header length ", header_size, " is implausible"));
  }
  if (8 + header_size > size) {
    return absl::DataLossError(absl::StrCat(path, ": truncated: header of ",
                                            header_size,
                                            " bytes but the file has ", size));
  }
  const char* header_begin = reinterpret_cast<const char*>(bytes + 8);
  nlohmann::json header =
      nlohmann::json::parse(header_begin, header_begin + header_size, nullptr,
                            /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) {
    return Corrupt(path, "header is not a JSON object");
  }
  const uint8_t* data_start = bytes + 8 + header_size;
  const uint64_t data_size = size - 8 - header_size;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") continue;
    absl::StatusOr<TensorView> view =
        ParseTensorEntry(path, name, entry, data_start, data_size);
    if (!view.ok()) return view.status();
    file->tensors_.emplace(name, std::move(*view));
  }
  return file;
}

const TensorView* SafetensorsFile::Find(const std::string& name) const {
  const auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

}  // namespace moe

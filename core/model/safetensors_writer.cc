#include "core/model/safetensors_writer.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace moe {

void SafetensorsWriter::Add(std::string name, DType dtype,
                            std::vector<int64_t> shape,
                            std::vector<uint8_t> bytes) {
  auto held = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
  AddLazy(std::move(name), dtype, std::move(shape),
          [held]() -> absl::StatusOr<std::vector<uint8_t>> { return *held; });
}

void SafetensorsWriter::AddLazy(std::string name, DType dtype,
                                std::vector<int64_t> shape, Producer produce) {
  size_t elements = 1;
  for (int64_t dim : shape) elements *= static_cast<size_t>(dim);
  const size_t size = elements * DTypeSize(dtype);
  data_bytes_ += size;
  tensors_.push_back(
      {std::move(name), dtype, std::move(shape), size, std::move(produce)});
}

void SafetensorsWriter::Append(SafetensorsWriter&& other) {
  for (Entry& entry : other.tensors_) tensors_.push_back(std::move(entry));
  data_bytes_ += other.data_bytes_;
  other.tensors_.clear();
  other.data_bytes_ = 0;
}

std::vector<std::string> SafetensorsWriter::names() const {
  std::vector<std::string> result;
  for (const Entry& entry : tensors_) result.push_back(entry.name);
  return result;
}

absl::Status SafetensorsWriter::Write(const std::string& path) const {
  nlohmann::json header = nlohmann::json::object();
  header["__metadata__"] = {{"format", "pt"}};
  uint64_t offset = 0;
  for (const Entry& entry : tensors_) {
    header[entry.name] = {{"dtype", DTypeName(entry.dtype)},
                          {"shape", entry.shape},
                          {"data_offsets", {offset, offset + entry.size}}};
    offset += entry.size;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t header_size = text.size();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create ", path, ": ", std::strerror(errno)));
  }
  out.write(reinterpret_cast<const char*>(&header_size), 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const Entry& entry : tensors_) {
    absl::StatusOr<std::vector<uint8_t>> bytes = entry.produce();
    if (!bytes.ok()) return bytes.status();
    if (bytes->size() != entry.size) {
      return absl::InternalError(
          absl::StrCat("tensor ", entry.name, " for ", path, ": produced ",
                       bytes->size(), " bytes, its shape needs ", entry.size));
    }
    out.write(reinterpret_cast<const char*>(bytes->data()),
              static_cast<std::streamsize>(bytes->size()));
  }
  out.close();
  if (!out) return absl::DataLossError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

}  // namespace moe

#include "core/model/gguf.h"

#include <cstring>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/model/gguf_quants.h"
#include "core/util/status_macros.h"

namespace moe {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF", little-endian
constexpr uint64_t kDefaultAlignment = 32;
constexpr uint32_t kMaxDims = 4;  // GGML_MAX_DIMS
constexpr int kMaxArrayNesting = 4;

enum class ValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

// The fewest bytes a value of `type` takes in the file; 0 for an unknown
// type.
size_t MinValueBytes(uint32_t type) {
  switch (static_cast<ValueType>(type)) {
    case ValueType::kUint8:
    case ValueType::kInt8:
    case ValueType::kBool:
      return 1;
    case ValueType::kUint16:
    case ValueType::kInt16:
      return 2;
    case ValueType::kUint32:
    case ValueType::kInt32:
    case ValueType::kFloat32:
      return 4;
    case ValueType::kUint64:
    case ValueType::kInt64:
    case ValueType::kFloat64:
    case ValueType::kString:
      return 8;  // the length
    case ValueType::kArray:
      return 4 + 8;  // element type and count
  }
  return 0;
}

}  // namespace

std::string GgufValueText(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Reads the header, key/values and tensor infos with a bounds-checked
// cursor; every error names the file and the byte offset.
class GgufParser {
 public:
  explicit GgufParser(GgufFile& gguf)
      : gguf_(gguf), data_(gguf.file_->data()), size_(gguf.file_->size()) {}

  absl::Status Parse() {
    uint32_t magic = 0;
    MOE_RETURN_IF_ERROR(Read(&magic, "magic"));
    if (magic != kMagic) return Error("not a GGUF file (bad magic)");
    MOE_RETURN_IF_ERROR(Read(&gguf_.version_, "version"));
    if (gguf_.version_ != 2 && gguf_.version_ != 3) {
      return Error(absl::StrCat("GGUF version ", gguf_.version_,
                                " is not supported (supported: 2, 3)"));
    }
    uint64_t tensor_count = 0, kv_count = 0;
    MOE_RETURN_IF_ERROR(Read(&tensor_count, "tensor count"));
    MOE_RETURN_IF_ERROR(Read(&kv_count, "key/value count"));
    // Each key/value takes at least 12 bytes and each tensor info 24: a
    // count beyond that is corrupt, and must not drive a huge allocation.
    if (kv_count > Remaining() / 12 || tensor_count > Remaining() / 24) {
      return Error(absl::StrCat("counts (", kv_count, " key/values, ",
                                tensor_count, " tensors) exceed the file"));
    }
    for (uint64_t i = 0; i < kv_count; ++i) {
      MOE_RETURN_IF_ERROR(ReadKeyValue());
    }
    std::vector<uint64_t> offsets;
    for (uint64_t i = 0; i < tensor_count; ++i) {
      uint64_t offset = 0;
      MOE_RETURN_IF_ERROR(ReadTensorInfo(&offset));
      offsets.push_back(offset);
    }
    return PlaceTensorData(offsets);
  }

 private:
  absl::Status Error(const std::string& what) const {
    return absl::InvalidArgumentError(
        absl::StrCat(gguf_.path(), ": ", what, " (at byte ", position_, ")"));
  }

  size_t Remaining() const { return size_ - position_; }

  template <typename T>
  absl::Status Read(T* value, const std::string& what) {
    if (Remaining() < sizeof(T)) {
      return Error(absl::StrCat("truncated while reading ", what));
    }
    std::memcpy(value, data_ + position_, sizeof(T));
    position_ += sizeof(T);
    return absl::OkStatus();
  }

  absl::Status ReadString(std::string* out, const std::string& what) {
    uint64_t length = 0;
    MOE_RETURN_IF_ERROR(Read(&length, what));
    if (length > Remaining()) {
      return Error(absl::StrCat("truncated ", what, " (", length,
                                " bytes announced, ", Remaining(), " left)"));
    }
    out->assign(reinterpret_cast<const char*>(data_ + position_), length);
    position_ += length;
    return absl::OkStatus();
  }

  template <typename T>
  absl::Status ReadNumber(nlohmann::json* out, const std::string& what) {
    T value;
    MOE_RETURN_IF_ERROR(Read(&value, what));
    *out = value;
    return absl::OkStatus();
  }

  absl::Status ReadValue(uint32_t type, const std::string& key, int depth,
                         nlohmann::json* out) {
    switch (static_cast<ValueType>(type)) {
      case ValueType::kUint8:
        return ReadNumber<uint8_t>(out, key);
      case ValueType::kInt8:
        return ReadNumber<int8_t>(out, key);
      case ValueType::kUint16:
        return ReadNumber<uint16_t>(out, key);
      case ValueType::kInt16:
        return ReadNumber<int16_t>(out, key);
      case ValueType::kUint32:
        return ReadNumber<uint32_t>(out, key);
      case ValueType::kInt32:
        return ReadNumber<int32_t>(out, key);
      case ValueType::kUint64:
        return ReadNumber<uint64_t>(out, key);
      case ValueType::kInt64:
        return ReadNumber<int64_t>(out, key);
      case ValueType::kFloat32:
        return ReadNumber<float>(out, key);
      case ValueType::kFloat64:
        return ReadNumber<double>(out, key);
      case ValueType::kBool: {
        uint8_t value = 0;
        MOE_RETURN_IF_ERROR(Read(&value, key));
        if (value > 1) {
          return Error(absl::StrCat(key, ": bool value ", value));
        }
        *out = value == 1;
        return absl::OkStatus();
      }
      case ValueType::kString: {
        std::string value;
        MOE_RETURN_IF_ERROR(ReadString(&value, key));
        *out = std::move(value);
        return absl::OkStatus();
      }
      case ValueType::kArray:
        return ReadArray(key, depth, out);
    }
    return Error(absl::StrCat(key, ": unknown value type ", type));
  }

  absl::Status ReadArray(const std::string& key, int depth,
                         nlohmann::json* out) {
    if (depth >= kMaxArrayNesting) {
      return Error(absl::StrCat(key, ": arrays nested too deep"));
    }
    uint32_t element_type = 0;
    uint64_t count = 0;
    MOE_RETURN_IF_ERROR(Read(&element_type, key));
    MOE_RETURN_IF_ERROR(Read(&count, key));
    const size_t element_bytes = MinValueBytes(element_type);
    if (element_bytes == 0) {
      return Error(absl::StrCat(key, ": unknown value type ", element_type));
    }
    // The elements must fit in the rest of the file: a corrupt count fails
    // here instead of driving the JSON array's growth.
    if (count > Remaining() / element_bytes) {
      return Error(absl::StrCat(key, ": array of ", count,
                                " elements exceeds the file"));
    }
    *out = nlohmann::json::array();
    out->get_ref<nlohmann::json::array_t&>().reserve(count);
    for (uint64_t i = 0; i < count; ++i) {
      nlohmann::json element;
      MOE_RETURN_IF_ERROR(ReadValue(element_type, key, depth + 1, &element));
      out->push_back(std::move(element));
    }
    return absl::OkStatus();
  }

  absl::Status ReadKeyValue() {
    std::string key;
    MOE_RETURN_IF_ERROR(ReadString(&key, "metadata key"));
    if (gguf_.metadata_.contains(key)) {
      return Error(absl::StrCat("duplicate metadata key ", key));
    }
    uint32_t type = 0;
    MOE_RETURN_IF_ERROR(Read(&type, key));
    return ReadValue(type, key, 0, &gguf_.metadata_[key]);
  }

  absl::Status ReadTensorInfo(uint64_t* offset) {
    GgufTensor tensor;
    MOE_RETURN_IF_ERROR(ReadString(&tensor.name, "tensor name"));
    uint32_t num_dims = 0;
    MOE_RETURN_IF_ERROR(Read(&num_dims, tensor.name));
    if (num_dims == 0 || num_dims > kMaxDims) {
      return Error(absl::StrCat("tensor ", tensor.name, " has ", num_dims,
                                " dimensions (1 to ", kMaxDims, ")"));
    }
    int64_t elements = 1;
    for (uint32_t d = 0; d < num_dims; ++d) {
      uint64_t dim = 0;
      MOE_RETURN_IF_ERROR(Read(&dim, tensor.name));
      if (dim == 0 || dim > uint64_t{1} << 40 ||
          static_cast<uint64_t>(elements) > (uint64_t{1} << 48) / dim) {
        return Error(absl::StrCat("tensor ", tensor.name, " has dimension ",
                                  dim, " (empty or too large)"));
      }
      tensor.dims.push_back(static_cast<int64_t>(dim));
      elements *= static_cast<int64_t>(dim);
    }
    MOE_RETURN_IF_ERROR(Read(&tensor.type, tensor.name));
    MOE_RETURN_IF_ERROR(Read(offset, tensor.name));
    const absl::StatusOr<GgmlBlockLayout> layout = GgmlLayout(tensor.type);
    if (!layout.ok()) {
      return Error(absl::StrCat("tensor ", tensor.name, ": ",
                                layout.status().message()));
    }
    if (tensor.dims[0] % layout->block_elements != 0) {
      return Error(absl::StrCat("tensor ", tensor.name, ": rows of ",
                                tensor.dims[0], " are not whole ",
                                GgmlTypeName(tensor.type), " blocks"));
    }
    tensor.num_bytes = static_cast<size_t>(elements / layout->block_elements) *
                       layout->block_bytes;
    if (gguf_.index_.count(tensor.name) > 0) {
      return Error(absl::StrCat("duplicate tensor ", tensor.name));
    }
    gguf_.index_[tensor.name] = gguf_.tensors_.size();
    gguf_.tensors_.push_back(std::move(tensor));
    return absl::OkStatus();
  }

  absl::StatusOr<uint64_t> Alignment() const {
    const auto it = gguf_.metadata_.find("general.alignment");
    if (it == gguf_.metadata_.end()) return kDefaultAlignment;
    if (!it->is_number_integer() || it->get<int64_t>() <= 0 ||
        (it->get<uint64_t>() & (it->get<uint64_t>() - 1)) != 0) {
      return Error(absl::StrCat("general.alignment ", GgufValueText(*it),
                                " is not a power of two"));
    }
    return it->get<uint64_t>();
  }

  absl::Status PlaceTensorData(const std::vector<uint64_t>& offsets) {
    MOE_ASSIGN_OR_RETURN(const uint64_t alignment, Alignment());
    const uint64_t data_start =
        (position_ + alignment - 1) / alignment * alignment;
    for (size_t i = 0; i < offsets.size(); ++i) {
      GgufTensor& tensor = gguf_.tensors_[i];
      if (offsets[i] % alignment != 0) {
        return Error(absl::StrCat("tensor ", tensor.name, " offset ",
                                  offsets[i], " is not aligned to ",
                                  alignment));
      }
      if (data_start > size_ || offsets[i] > size_ - data_start ||
          tensor.num_bytes > size_ - data_start - offsets[i]) {
        return absl::InvalidArgumentError(absl::StrCat(
            gguf_.path(), ": tensor ", tensor.name, " (", tensor.num_bytes,
            " bytes at ", data_start + offsets[i], ") lies beyond the end of ",
            "the file (", size_, " bytes): truncated?"));
      }
      tensor.data = data_ + data_start + offsets[i];
    }
    return absl::OkStatus();
  }

  GgufFile& gguf_;
  const uint8_t* data_;
  size_t size_;
  size_t position_ = 0;
};

int64_t GgufTensor::num_elements() const {
  int64_t count = 1;
  for (int64_t dim : dims) count *= dim;
  return count;
}

std::vector<int64_t> GgufTensor::shape() const {
  return std::vector<int64_t>(dims.rbegin(), dims.rend());
}

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Open(
    const std::string& path) {
  MOE_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> file,
                       MappedFile::Open(path));
  std::unique_ptr<GgufFile> gguf(new GgufFile(std::move(file)));
  MOE_RETURN_IF_ERROR(GgufParser(*gguf).Parse());
  return gguf;
}

const GgufTensor* GgufFile::Find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

absl::StatusOr<std::vector<float>> GgufFile::ReadFloats(
    const GgufTensor& tensor) const {
  std::vector<float> values(static_cast<size_t>(tensor.num_elements()));
  const absl::Status status =
      DequantizeGgml(static_cast<GgmlType>(tensor.type), tensor.data,
                     tensor.num_elements(), values.data());
  if (!status.ok()) {
    return absl::Status(
        status.code(),
        absl::StrCat(path(), ": tensor ", tensor.name, ": ", status.message()));
  }
  return values;
}

}  // namespace moe

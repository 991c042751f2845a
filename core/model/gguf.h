#ifndef MOE_CORE_MODEL_GGUF_H_
#define MOE_CORE_MODEL_GGUF_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/mapped_file.h"
#include "nlohmann/json.hpp"

namespace moe {

// One tensor of a GGUF file.
struct GgufTensor {
  std::string name;
  // GGML order: dims[0] is the innermost (contiguous) dimension, so a
  // row-major [rows, cols] matrix has dims {cols, rows}.
  std::vector<int64_t> dims;
  uint32_t type;        // GGML type id (see core/model/gguf_quants.h)
  const uint8_t* data;  // inside the mapping
  size_t num_bytes;

  int64_t num_elements() const;
  // The row-major shape, outermost first, as safetensors writes it.
  std::vector<int64_t> shape() const;
};

// A parsed and validated GGUF file (versions 2 and 3), memory-mapped.
// Opening checks the magic, version, every key/value and tensor info, the
// alignment and every tensor's byte range against the file size, so a
// corrupt or truncated file fails here, naming the file, the offset and the
// entry, rather than later with a crash.
class GgufFile {
 public:
  static absl::StatusOr<std::unique_ptr<GgufFile>> Open(
      const std::string& path);

  const std::string& path() const { return file_->path(); }
  uint32_t version() const { return version_; }
  // Every key/value: GGUF strings as JSON strings (raw bytes), integers as
  // integers, floats as floats, bools as bools, arrays as arrays.
  const nlohmann::json& metadata() const { return metadata_; }
  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  // Null when absent.
  const GgufTensor* Find(const std::string& name) const;

  // The tensor's values decoded to float32, row-major; an unsupported GGML
  // type is an error naming the tensor and the type.
  absl::StatusOr<std::vector<float>> ReadFloats(const GgufTensor& tensor) const;

 private:
  explicit GgufFile(std::unique_ptr<MappedFile> file)
      : file_(std::move(file)) {}
  friend class GgufParser;

  std::unique_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  nlohmann::json metadata_ = nlohmann::json::object();
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t> index_;
};

// A metadata value as JSON text for messages. GGUF strings are raw bytes:
// invalid UTF-8 shows as U+FFFD instead of failing.
std::string GgufValueText(const nlohmann::json& value);

}  // namespace moe

#endif  // MOE_CORE_MODEL_GGUF_H_

#ifndef MOE_CORE_MODEL_SAFETENSORS_WRITER_H_
#define MOE_CORE_MODEL_SAFETENSORS_WRITER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/model/dtype.h"

namespace moe {

// Collects tensors and writes them as one safetensors file: an 8-byte header
// length, the JSON header (padded with spaces to 8 bytes), then the data.
class SafetensorsWriter {
 public:
  // Makes a tensor's bytes when the file is written, so that a checkpoint
  // larger than memory passes through one tensor at a time. Producers run in
  // the order their tensors were added.
  using Producer = std::function<absl::StatusOr<std::vector<uint8_t>>()>;

  void Add(std::string name, DType dtype, std::vector<int64_t> shape,
           std::vector<uint8_t> bytes);
  // The producer must return exactly elements x DTypeSize(dtype) bytes.
  void AddLazy(std::string name, DType dtype, std::vector<int64_t> shape,
               Producer produce);
  // Moves every tensor of `other` to the end of this file.
  void Append(SafetensorsWriter&& other);
  size_t num_bytes() const { return data_bytes_; }
  size_t num_tensors() const { return tensors_.size(); }
  std::vector<std::string> names() const;

  absl::Status Write(const std::string& path) const;

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    size_t size;
    Producer produce;
  };
  std::vector<Entry> tensors_;
  size_t data_bytes_ = 0;
};

}  // namespace moe

#endif  // MOE_CORE_MODEL_SAFETENSORS_WRITER_H_

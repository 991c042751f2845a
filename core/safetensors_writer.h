#ifndef MOE_CORE_SAFETENSORS_WRITER_H_
#define MOE_CORE_SAFETENSORS_WRITER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/dtype.h"

namespace moe {

// Collects tensors and writes them as one safetensors file: an 8-byte header
// length, the JSON header (padded with spaces to 8 bytes), then the data.
class SafetensorsWriter {
 public:
  void Add(std::string name, DType dtype, std::vector<int64_t> shape,
           std::vector<uint8_t> bytes);
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
    std::vector<uint8_t> bytes;
  };
  std::vector<Entry> tensors_;
  size_t data_bytes_ = 0;
};

}  // namespace moe

#endif  // MOE_CORE_SAFETENSORS_WRITER_H_

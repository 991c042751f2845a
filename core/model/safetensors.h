#ifndef MOE_CORE_MODEL_SAFETENSORS_H_
#define MOE_CORE_MODEL_SAFETENSORS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/dtype.h"
#include "core/model/mapped_file.h"

namespace moe {

// One tensor inside a memory-mapped safetensors file.
struct TensorView {
  std::string name;
  std::string file;  // path of the file holding it, for error messages
  DType dtype;
  std::vector<int64_t> shape;
  const uint8_t* data;  // not aligned: safetensors offsets are byte offsets
  size_t num_bytes;

  int64_t num_elements() const;
};

// A parsed and validated safetensors file. Opening checks the header length,
// the JSON, every dtype, shape and byte range against the file size, so a
// truncated or corrupt file fails here with the file and tensor named, not
// later with a crash.
class SafetensorsFile {
 public:
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(
      const std::string& path);

  const std::string& path() const { return file_->path(); }
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  // Null when absent.
  const TensorView* Find(const std::string& name) const;

 private:
  explicit SafetensorsFile(std::unique_ptr<MappedFile> file)
      : file_(std::move(file)) {}

  std::unique_ptr<MappedFile> file_;
  std::map<std::string, TensorView> tensors_;
};

}  // namespace moe

#endif  // MOE_CORE_MODEL_SAFETENSORS_H_

#ifndef MOE_CORE_MODEL_CHECKPOINT_WRITER_H_
#define MOE_CORE_MODEL_CHECKPOINT_WRITER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/model/safetensors_writer.h"

namespace moe {

// Writes the tensors of a Hugging Face checkpoint: one model.safetensors, or
// `num_shards` files model-0000i-of-0000n.safetensors of about equal size
// with model.safetensors.index.json.
class CheckpointWriter {
 public:
  explicit CheckpointWriter(int num_shards = 1) : num_shards_(num_shards) {}

  void Add(std::string name, DType dtype, std::vector<int64_t> shape,
           std::vector<uint8_t> bytes);
  // See SafetensorsWriter::AddLazy: bytes made at Write, in Add order.
  void AddLazy(std::string name, DType dtype, std::vector<int64_t> shape,
               SafetensorsWriter::Producer produce);
  // Writes the files into `directory` (which must exist), replacing the
  // model.safetensors or index of a checkpoint already there.
  absl::Status Write(const std::string& directory);

 private:
  int num_shards_;
  std::vector<SafetensorsWriter> pending_;  // one per tensor until Write
};

}  // namespace moe

#endif  // MOE_CORE_MODEL_CHECKPOINT_WRITER_H_

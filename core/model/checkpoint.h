#ifndef MOE_CORE_MODEL_CHECKPOINT_H_
#define MOE_CORE_MODEL_CHECKPOINT_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/safetensors.h"

namespace moe {

// The tensors of a Hugging Face checkpoint directory: `model.safetensors`, or
// (when there is none, as transformers decides) the shards listed by
// `model.safetensors.index.json`. All files are
// memory-mapped; tensor data stays in the page cache.
class Checkpoint {
 public:
  static absl::StatusOr<std::unique_ptr<Checkpoint>> Open(
      const std::string& directory);

  const std::string& directory() const { return directory_; }
  // Null when no file holds `name`.
  const TensorView* Find(const std::string& name) const;
  // Every tensor, by name.
  const std::map<std::string, const TensorView*>& tensors() const {
    return tensors_;
  }
  // Where a missing tensor was looked for, for error messages.
  std::string Describe() const;

 private:
  std::string directory_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorView*> tensors_;
};

}  // namespace moe

#endif  // MOE_CORE_MODEL_CHECKPOINT_H_

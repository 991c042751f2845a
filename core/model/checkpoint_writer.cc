#include "core/model/checkpoint_writer.h"

#include <filesystem>

#include "absl/strings/str_format.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace moe {

void CheckpointWriter::Add(std::string name, DType dtype,
                           std::vector<int64_t> shape,
                           std::vector<uint8_t> bytes) {
  pending_.emplace_back();
  pending_.back().Add(std::move(name), dtype, std::move(shape),
                      std::move(bytes));
}

void CheckpointWriter::AddLazy(std::string name, DType dtype,
                               std::vector<int64_t> shape,
                               SafetensorsWriter::Producer produce) {
  pending_.emplace_back();
  pending_.back().AddLazy(std::move(name), dtype, std::move(shape),
                          std::move(produce));
}

absl::Status CheckpointWriter::Write(const std::string& directory) {
  // A checkpoint written over an older one must not leave the other layout's
  // entry point behind: readers would pick whichever they look for first.
  std::error_code ignored;
  std::filesystem::remove(directory + "/model.safetensors", ignored);
  std::filesystem::remove(directory + "/model.safetensors.index.json", ignored);
  if (num_shards_ <= 1) {
    SafetensorsWriter file;
    for (SafetensorsWriter& tensor : pending_) file.Append(std::move(tensor));
    pending_.clear();
    return file.Write(directory + "/model.safetensors");
  }
  size_t total = 0;
  for (const SafetensorsWriter& tensor : pending_) total += tensor.num_bytes();
  std::vector<SafetensorsWriter> shards(num_shards_);
  size_t written = 0;
  for (SafetensorsWriter& tensor : pending_) {
    // Consecutive tensors fill shard after shard by cumulative size.
    const size_t shard = std::min<size_t>(
        num_shards_ - 1, written * num_shards_ / std::max<size_t>(total, 1));
    written += tensor.num_bytes();
    shards[shard].Append(std::move(tensor));
  }
  pending_.clear();
  nlohmann::json weight_map = nlohmann::json::object();
  for (int s = 0; s < num_shards_; ++s) {
    const std::string name =
        absl::StrFormat("model-%05d-of-%05d.safetensors", s + 1, num_shards_);
    for (const std::string& tensor : shards[s].names())
      weight_map[tensor] = name;
    MOE_RETURN_IF_ERROR(shards[s].Write(directory + "/" + name));
  }
  const nlohmann::json index = {{"metadata", {{"total_size", total}}},
                                {"weight_map", weight_map}};
  return WriteStringToFile(directory + "/model.safetensors.index.json",
                           index.dump(2));
}

}  // namespace moe

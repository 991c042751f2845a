#include "core/model/checkpoint.h"

#include <filesystem>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/util/file_util.h"

namespace moe {
namespace {

constexpr char kSingleFile[] = "model.safetensors";
constexpr char kIndexFile[] = "model.safetensors.index.json";

// Shard names from the index, with every tensor's expected shard.
absl::StatusOr<std::map<std::string, std::string>> ReadIndex(
    const std::string& index_path) {
  absl::StatusOr<nlohmann::json> index = ReadJsonFile(index_path);
  if (!index.ok()) return index.status();
  const auto weight_map = index->find("weight_map");
  if (!index->is_object() || weight_map == index->end() ||
      !weight_map->is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(index_path, ": missing \"weight_map\" object"));
  }
  std::map<std::string, std::string> shard_of;
  for (const auto& [tensor, shard] : weight_map->items()) {
    if (!shard.is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(index_path, ": weight_map entry for ", tensor,
                       " is not a file name"));
    }
    const std::string file = shard.get<std::string>();
    if (file.empty() || file == "." || file == ".." ||
        file.find('/') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          index_path, ": shard name \"", file, "\" must be a plain file name"));
    }
    shard_of[tensor] = file;
  }
  return shard_of;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::Open(
    const std::string& directory) {
  namespace fs = std::filesystem;
  auto checkpoint = std::make_unique<Checkpoint>();
  checkpoint->directory_ = directory;
  const fs::path dir(directory);
  std::map<std::string, std::string> shard_of;
  std::set<std::string> file_names;
  // As Hugging Face transformers: the single file first, then the index.
  if (fs::exists(dir / kSingleFile)) {
    file_names.insert(kSingleFile);
  } else if (fs::exists(dir / kIndexFile)) {
    absl::StatusOr<std::map<std::string, std::string>> index =
        ReadIndex((dir / kIndexFile).string());
    if (!index.ok()) return index.status();
    shard_of = std::move(*index);
    for (const auto& [tensor, file] : shard_of) file_names.insert(file);
  } else {
    return absl::NotFoundError(
        absl::StrCat(directory, ": no ", kSingleFile, " or ", kIndexFile));
  }
  for (const std::string& name : file_names) {
    absl::StatusOr<std::unique_ptr<SafetensorsFile>> file =
        SafetensorsFile::Open((dir / name).string());
    if (!file.ok()) return file.status();
    for (const auto& [tensor, view] : (*file)->tensors()) {
      const auto [it, inserted] = checkpoint->tensors_.emplace(tensor, &view);
      if (!inserted) {
        return absl::InvalidArgumentError(
            absl::StrCat("tensor ", tensor, " appears in both ",
                         it->second->file, " and ", view.file));
      }
    }
    checkpoint->files_.push_back(std::move(*file));
  }
  for (const auto& [tensor, file] : shard_of) {
    const TensorView* view = checkpoint->Find(tensor);
    const std::string expected = (dir / file).string();
    if (view == nullptr || view->file != expected) {
      return absl::NotFoundError(
          absl::StrCat("tensor ", tensor, " is missing from ", expected,
                       " (listed there by ", (dir / kIndexFile).string(), ")"));
    }
  }
  return checkpoint;
}

const TensorView* Checkpoint::Find(const std::string& name) const {
  const auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : it->second;
}

std::string Checkpoint::Describe() const {
  if (files_.size() == 1) return files_[0]->path();
  return absl::StrCat(directory_, " (", files_.size(), " safetensors shards)");
}

}  // namespace moe

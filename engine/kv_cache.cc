#include "engine/kv_cache.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace moe {

SequenceKvCache::SequenceKvCache(SequenceKvCache&& other) noexcept
    : pool_(other.pool_),
      blocks_(std::exchange(other.blocks_, {})),
      length_(std::exchange(other.length_, 0)) {}

SequenceKvCache& SequenceKvCache::operator=(SequenceKvCache&& other) noexcept {
  if (this != &other) {
    Release();
    pool_ = other.pool_;
    blocks_ = std::exchange(other.blocks_, {});
    length_ = std::exchange(other.length_, 0);
  }
  return *this;
}

absl::Status SequenceKvCache::Reserve(int64_t length) {
  const int64_t needed = BlocksNeeded(length);
  if (needed == 0) return absl::OkStatus();
  std::optional<std::vector<int32_t>> blocks = pool_->Allocate(needed);
  if (!blocks.has_value()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the KV cache is full: ", length, " positions need ",
                     needed, " more blocks, ", pool_->free_blocks(), " of ",
                     pool_->total_blocks(), " are free"));
  }
  blocks_.insert(blocks_.end(), blocks->begin(), blocks->end());
  return absl::OkStatus();
}

void SequenceKvCache::Release() {
  if (!blocks_.empty()) pool_->Free(blocks_);
  blocks_.clear();
  length_ = 0;
}

float* SequenceKvCache::key_row(int layer, int64_t position) const {
  const int64_t block_size = pool_->block_size();
  return pool_->keys(blocks_[position / block_size], layer) +
         (position % block_size) * pool_->kv_dim();
}

float* SequenceKvCache::value_row(int layer, int64_t position) const {
  const int64_t block_size = pool_->block_size();
  return pool_->values(blocks_[position / block_size], layer) +
         (position % block_size) * pool_->kv_dim();
}

PagedKv SequenceKvCache::View(int layer, std::vector<const float*>& keys,
                              std::vector<const float*>& values) const {
  keys.clear();
  values.clear();
  for (int32_t block : blocks_) {
    keys.push_back(pool_->keys(block, layer));
    values.push_back(pool_->values(block, layer));
  }
  return PagedKv{keys, values, pool_->block_size()};
}

}  // namespace moe

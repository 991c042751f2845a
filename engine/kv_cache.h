#ifndef MOE_ENGINE_KV_CACHE_H_
#define MOE_ENGINE_KV_CACHE_H_

#include <algorithm>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "core/kernels/attention.h"
#include "engine/kv_block_pool.h"

namespace moe {

// Keys and values of one sequence (keys with the rotary embedding applied):
// a block table into a KvBlockPool. The blocks go back to the pool when the
// cache is released or destroyed.
class SequenceKvCache {
 public:
  explicit SequenceKvCache(KvBlockPool& pool) : pool_(&pool) {}
  ~SequenceKvCache() { Release(); }
  SequenceKvCache(SequenceKvCache&& other) noexcept;
  SequenceKvCache& operator=(SequenceKvCache&& other) noexcept;

  // Positions that hold keys and values: [0, length).
  int64_t length() const { return length_; }
  // Positions its blocks can hold.
  int64_t capacity() const {
    return static_cast<int64_t>(blocks_.size()) * pool_->block_size();
  }
  int64_t num_blocks() const { return static_cast<int64_t>(blocks_.size()); }
  // Its block ids in position order (block j holds positions
  // [j * block_size, (j + 1) * block_size)).
  const std::vector<int32_t>& blocks() const { return blocks_; }
  // Blocks it would take from the pool to hold `length` positions.
  int64_t BlocksNeeded(int64_t length) const {
    return std::max<int64_t>(0, pool_->BlocksFor(length) - num_blocks());
  }

  // Takes blocks from the pool until `length` positions fit.
  // RESOURCE_EXHAUSTED, with nothing taken, when the pool has too few.
  absl::Status Reserve(int64_t length);
  // Marks [0, length) as holding data; length <= capacity(). The forward
  // pass writes new positions through the rows below, then sets the length.
  void SetLength(int64_t length) { length_ = length; }
  // Gives every block back to the pool; the length becomes 0.
  void Release();

  float* key_row(int layer, int64_t position) const;
  float* value_row(int layer, int64_t position) const;
  // One layer's blocks for attention; `keys` and `values` hold the block
  // pointers and must outlive the view.
  PagedKv View(int layer, std::vector<const float*>& keys,
               std::vector<const float*>& values) const;

 private:
  KvBlockPool* pool_;
  std::vector<int32_t> blocks_;
  int64_t length_ = 0;
};

}  // namespace moe

#endif  // MOE_ENGINE_KV_CACHE_H_

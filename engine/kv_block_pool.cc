#include "engine/kv_block_pool.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace moe {
namespace {

// float32 or BF16.
int64_t ElementBytes(KvStorage storage) {
  return storage == KvStorage::kHostFloat32 ? 4 : 2;
}

int64_t BlockCount(int num_layers, int64_t kv_dim,
                   const KvCacheOptions& options, KvStorage storage) {
  const int64_t block_bytes = int64_t{2} * num_layers * options.block_size *
                              kv_dim * ElementBytes(storage);
  return std::max<int64_t>(1, options.memory_bytes / block_bytes);
}

}  // namespace

KvBlockPool::KvBlockPool(int num_layers, int64_t kv_dim,
                         const KvCacheOptions& options, KvStorage storage)
    : storage_(storage),
      num_layers_(num_layers),
      block_size_(options.block_size),
      kv_dim_(kv_dim),
      block_floats_(int64_t{options.block_size} * kv_dim),
      total_blocks_(BlockCount(num_layers, kv_dim, options, storage)),
      // Default-initialized: no page is touched here.
      data_(storage == KvStorage::kHostFloat32
                ? new float[total_blocks_ * num_layers * 2 * block_floats_]
                : nullptr) {
  free_.resize(static_cast<size_t>(total_blocks_));
  // Block 0 on top of the stack.
  for (int64_t i = 0; i < total_blocks_; ++i) {
    free_[i] = static_cast<int32_t>(total_blocks_ - 1 - i);
  }
}

int64_t KvBlockPool::element_bytes() const { return ElementBytes(storage_); }

void KvBlockPool::NoHostStorage() {
  // A pointer into nothing would corrupt memory far from the mistake.
  std::fprintf(stderr,
               "KvBlockPool: keys() or values() of a pool whose keys and "
               "values live elsewhere (KvStorage::kAccountingOnlyBf16)\n");
  std::abort();
}

int64_t KvBlockPool::free_blocks() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int64_t>(free_.size());
}

std::optional<std::vector<int32_t>> KvBlockPool::Allocate(int64_t count) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (count > static_cast<int64_t>(free_.size())) return std::nullopt;
  std::vector<int32_t> blocks(free_.end() - count, free_.end());
  free_.resize(free_.size() - count);
  return blocks;
}

void KvBlockPool::Free(const std::vector<int32_t>& blocks) {
  std::lock_guard<std::mutex> lock(mutex_);
  free_.insert(free_.end(), blocks.rbegin(), blocks.rend());
}

}  // namespace moe

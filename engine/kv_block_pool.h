#ifndef MOE_ENGINE_KV_BLOCK_POOL_H_
#define MOE_ENGINE_KV_BLOCK_POOL_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace moe {

// How big the KV cache is: blocks of `block_size` positions, as many as fit
// in `memory_bytes`.
struct KvCacheOptions {
  int block_size = 16;
  int64_t memory_bytes = int64_t{1} << 30;
};

// Where a KvBlockPool's keys and values live, which sets what a block costs
// out of KvCacheOptions::memory_bytes.
enum class KvStorage {
  // In host memory the pool allocates, float32 (the CPU runner): keys() and
  // values() point into it.
  kHostFloat32,
  // Outside the pool, BF16 (the GPU runner's pools on its device): the pool
  // only hands out and takes back block ids and allocates no host memory;
  // keys() and values() must not be called.
  kAccountingOnlyBf16,
};

// The KV cache's memory: a fixed number of blocks, each holding the keys and
// values ([positions, kv_dim]) of `block_size` positions for every layer.
// Sequences take blocks as they grow and give them back when they end, so
// the memory is shared at the granularity of one block rather than reserved
// for each sequence's longest possible length. With KvStorage::kHostFloat32
// the memory is allocated once and left untouched until used: pages are
// committed as blocks first fill. Thread-safe.
class KvBlockPool {
 public:
  // At least one block.
  KvBlockPool(int num_layers, int64_t kv_dim, const KvCacheOptions& options,
              KvStorage storage = KvStorage::kHostFloat32);

  KvStorage storage() const { return storage_; }
  // Bytes of one key or value element: 4 (float32) or 2 (BF16).
  int64_t element_bytes() const;
  int block_size() const { return block_size_; }
  int64_t kv_dim() const { return kv_dim_; }
  int64_t total_blocks() const { return total_blocks_; }
  int64_t free_blocks() const;
  // Blocks that hold `positions` positions.
  int64_t BlocksFor(int64_t positions) const {
    return (positions + block_size_ - 1) / block_size_;
  }

  // Takes `count` blocks, all or none: nullopt when fewer are free.
  std::optional<std::vector<int32_t>> Allocate(int64_t count);
  void Free(const std::vector<int32_t>& blocks);

  // A block's keys and values for `layer`, in host memory: only with
  // KvStorage::kHostFloat32 (aborts otherwise).
  float* keys(int32_t block, int layer) const {
    return HostData() + Offset(block, layer);
  }
  float* values(int32_t block, int layer) const {
    return HostData() + Offset(block, layer) + block_floats_;
  }

 private:
  int64_t Offset(int32_t block, int layer) const {
    return (int64_t{block} * num_layers_ + layer) * 2 * block_floats_;
  }
  float* HostData() const {
    if (data_ == nullptr) NoHostStorage();
    return data_.get();
  }
  [[noreturn]] static void NoHostStorage();

  const KvStorage storage_;
  const int num_layers_;
  const int block_size_;
  const int64_t kv_dim_;
  const int64_t block_floats_;  // block_size * kv_dim
  const int64_t total_blocks_;
  std::unique_ptr<float[]> data_;  // null unless kHostFloat32
  mutable std::mutex mutex_;
  std::vector<int32_t> free_;  // a stack: recently freed blocks are warm
};

}  // namespace moe

#endif  // MOE_ENGINE_KV_BLOCK_POOL_H_

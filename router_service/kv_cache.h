#ifndef MOE_ROUTER_SERVICE_KV_CACHE_H_
#define MOE_ROUTER_SERVICE_KV_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace moe {

// Keys and values of one sequence, per layer, as [positions, kv_heads *
// head_dim] float32 rows (keys with the rotary embedding applied).
class SequenceKvCache {
 public:
  SequenceKvCache(int num_layers, int64_t kv_dim)
      : kv_dim_(kv_dim), keys_(num_layers), values_(num_layers) {}

  int64_t length() const { return length_; }
  int64_t kv_dim() const { return kv_dim_; }

  // Makes room for positions [0, length); new positions are written by the
  // forward pass through the pointers below.
  void Resize(int64_t length);

  float* keys(int layer) { return keys_[layer].data(); }
  float* values(int layer) { return values_[layer].data(); }

 private:
  int64_t kv_dim_;
  int64_t length_ = 0;
  std::vector<std::vector<float>> keys_;
  std::vector<std::vector<float>> values_;
};

}  // namespace moe

#endif  // MOE_ROUTER_SERVICE_KV_CACHE_H_

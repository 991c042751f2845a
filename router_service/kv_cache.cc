#include "router_service/kv_cache.h"

namespace moe {

void SequenceKvCache::Resize(int64_t length) {
  for (size_t layer = 0; layer < keys_.size(); ++layer) {
    keys_[layer].resize(static_cast<size_t>(length * kv_dim_));
    values_[layer].resize(static_cast<size_t>(length * kv_dim_));
  }
  length_ = length;
}

}  // namespace moe

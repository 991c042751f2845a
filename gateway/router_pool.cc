#include "gateway/router_pool.h"

#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"

namespace moe {

RouterPool::RouterPool(const std::vector<std::string>& addresses) {
  for (const std::string& address : addresses) {
    routers_.push_back(
        {address, v1::Router::NewStub(grpc::CreateChannel(
                      address, grpc::InsecureChannelCredentials()))});
  }
}

RouterPool::Lease RouterPool::Acquire() {
  std::lock_guard<std::mutex> lock(mutex_);
  const size_t count = routers_.size();
  size_t best = next_ % count;
  for (size_t i = 1; i < count; ++i) {
    const size_t candidate = (next_ + i) % count;
    if (routers_[candidate].in_flight < routers_[best].in_flight) {
      best = candidate;
    }
  }
  next_ = best + 1;
  ++routers_[best].in_flight;
  return {static_cast<int>(best), routers_[best].stub.get()};
}

void RouterPool::Release(int index) {
  std::lock_guard<std::mutex> lock(mutex_);
  --routers_[index].in_flight;
}

int RouterPool::in_flight(int index) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return routers_[index].in_flight;
}

}  // namespace moe

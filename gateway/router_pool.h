#ifndef MOE_GATEWAY_ROUTER_POOL_H_
#define MOE_GATEWAY_ROUTER_POOL_H_

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "moe/v1/router.grpc.pb.h"

namespace moe {

// The routers a gateway spreads its requests over, each with the count of
// requests this gateway has running on it. Thread-safe.
class RouterPool {
 public:
  // `addresses`: host:port of each router, at least one. Channels connect
  // lazily, so a router that is not up yet is not an error here.
  explicit RouterPool(const std::vector<std::string>& addresses);

  struct Lease {
    int index;
    v1::Router::Stub* stub;
  };
  // The router with the fewest requests running from this gateway (ties go
  // round-robin), counted as one more until Release.
  Lease Acquire();
  void Release(int index);

  int size() const { return static_cast<int>(routers_.size()); }
  const std::string& address(int index) const {
    return routers_[index].address;
  }
  int in_flight(int index) const;

 private:
  struct Router {
    std::string address;
    std::unique_ptr<v1::Router::Stub> stub;
    int in_flight = 0;
  };

  mutable std::mutex mutex_;
  std::vector<Router> routers_;
  size_t next_ = 0;  // where the search for the least loaded starts
};

}  // namespace moe

#endif  // MOE_GATEWAY_ROUTER_POOL_H_

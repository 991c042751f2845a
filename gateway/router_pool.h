#ifndef MOE_GATEWAY_ROUTER_POOL_H_
#define MOE_GATEWAY_ROUTER_POOL_H_

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "grpcpp/security/credentials.h"
#include "moe/v1/router.grpc.pb.h"

namespace moe {

// The routers a gateway spreads its requests over, each with the count of
// requests this gateway has running on it. Thread-safe.
class RouterPool {
 public:
  // `addresses`: host:port of each router, at least one, reached with
  // `credentials`, pinged every `keepalive_interval` (see
  // rpc/keepalive.h). Channels connect lazily, so a router that is not up
  // yet is not an error here.
  RouterPool(const std::vector<std::string>& addresses,
             const std::shared_ptr<grpc::ChannelCredentials>& credentials,
             absl::Duration keepalive_interval);

  struct Lease {
    int index;
    v1::Router::Stub* stub;
  };
  // The router with the fewest requests running from this gateway (ties go
  // round-robin), counted as one more until Release: among those not in
  // `avoid` that are reachable, else among those not in `avoid`. `avoid`
  // must leave one.
  Lease Acquire(const std::vector<int>& avoid = {});
  void Release(int index);

  // False while the gateway's connection to the router has failed (and not
  // yet been made again): a request there would fail before reaching it.
  bool Reachable(int index) const;

  int size() const { return static_cast<int>(routers_.size()); }
  const std::string& address(int index) const {
    return routers_[index].address;
  }
  int in_flight(int index) const;

 private:
  struct Router {
    std::string address;
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<v1::Router::Stub> stub;
    int in_flight = 0;
  };

  mutable std::mutex mutex_;
  std::vector<Router> routers_;
  size_t next_ = 0;  // where the search for the least loaded starts
};

}  // namespace moe

#endif  // MOE_GATEWAY_ROUTER_POOL_H_

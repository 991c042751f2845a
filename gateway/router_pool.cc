#include "gateway/router_pool.h"

#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "rpc/keepalive.h"

namespace moe {

RouterPool::RouterPool(
    const std::vector<std::string>& addresses,
    const std::shared_ptr<grpc::ChannelCredentials>& credentials,
    absl::Duration keepalive_interval) {
  // A router that vanished without closing its connections is noticed
  // within seconds, also while no request runs on it.
  grpc::ChannelArguments args;
  SetClientKeepalive(keepalive_interval, absl::Seconds(5), args);
  for (const std::string& address : addresses) {
    std::shared_ptr<grpc::Channel> channel =
        grpc::CreateCustomChannel(address, credentials, args);
    routers_.push_back({address, channel, v1::Router::NewStub(channel)});
  }
}

bool RouterPool::Reachable(int index) const {
  // Asking for the state also starts connecting an idle channel.
  const grpc_connectivity_state state =
      routers_[index].channel->GetState(/*try_to_connect=*/true);
  return state != GRPC_CHANNEL_TRANSIENT_FAILURE &&
         state != GRPC_CHANNEL_SHUTDOWN;
}

RouterPool::Lease RouterPool::Acquire(const std::vector<int>& avoid) {
  std::vector<bool> candidate(routers_.size(), true);
  for (int index : avoid) candidate[index] = false;
  std::vector<bool> reachable(routers_.size());
  bool any_reachable = false;
  for (size_t i = 0; i < routers_.size(); ++i) {
    reachable[i] = candidate[i] && Reachable(static_cast<int>(i));
    any_reachable = any_reachable || reachable[i];
  }
  if (any_reachable) candidate = reachable;
  std::lock_guard<std::mutex> lock(mutex_);
  const size_t count = routers_.size();
  int best = -1;
  for (size_t i = 0; i < count; ++i) {
    const size_t index = (next_ + i) % count;
    if (candidate[index] &&
        (best < 0 || routers_[index].in_flight < routers_[best].in_flight)) {
      best = static_cast<int>(index);
    }
  }
  next_ = best + 1;
  ++routers_[best].in_flight;
  return {best, routers_[best].stub.get()};
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

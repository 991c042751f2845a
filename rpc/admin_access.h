#ifndef MOE_RPC_ADMIN_ACCESS_H_
#define MOE_RPC_ADMIN_ACCESS_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "grpcpp/server_context.h"

namespace moe {

// Who may call a service's administrative RPCs (a worker's LoadExperts and
// UnloadExperts, the router's Cancel and plan changes): over TLS, a peer
// whose certificate (which the cluster's CA signed: mTLS) has one of
// `identities` as its common name; without TLS, a peer on loopback only.
class AdminAccess {
 public:
  explicit AdminAccess(std::vector<std::string> identities)
      : identities_(std::move(identities)) {}

  // OK, or PERMISSION_DENIED naming `method` and what the peer lacks.
  absl::Status Check(const grpc::ServerContextBase& context,
                     absl::string_view method) const;

 private:
  const std::vector<std::string> identities_;
};

// Whether a gRPC peer string ("ipv4:127.0.0.1:5", "ipv6:[::1]:5",
// "unix:...") is on this machine's loopback.
bool IsLoopbackPeer(std::string_view peer);

}  // namespace moe

#endif  // MOE_RPC_ADMIN_ACCESS_H_

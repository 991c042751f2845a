#ifndef MOE_RPC_SERVER_RUNNER_H_
#define MOE_RPC_SERVER_RUNNER_H_

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "grpcpp/impl/codegen/service_type.h"
#include "grpcpp/security/server_credentials.h"
#include "rpc/keepalive.h"

namespace moe {

struct ServeOptions {
  // Whether the service can do its work now (polled every 100 ms); the
  // standard grpc.health.v1 service reports SERVING or NOT_SERVING by it.
  // Null: always.
  std::function<bool()> serving;
  // After SIGINT or SIGTERM: the work in flight gets this long to end.
  absl::Duration drain_timeout = absl::Seconds(10);
  // Set on SIGINT or SIGTERM, for a service that refuses new work itself
  // while it drains (and still answers health and status calls); then
  // `idle` says when its work in flight has ended. Without `idle`, the
  // server stops taking calls at once.
  std::atomic<bool>* draining = nullptr;
  std::function<bool()> idle;
  // Connections older than this are closed gracefully (GOAWAY; their calls
  // finish), so clients resolve the server's name again and find new
  // copies behind it (pods a Kubernetes Service gained). Zero: never.
  absl::Duration max_connection_age = absl::ZeroDuration();
  // The ping interval the service's clients use: pings that far apart are
  // accepted (see keepalive.h).
  absl::Duration keepalive_interval = kDefaultKeepaliveInterval;
  // The largest request message taken; larger ones end RESOURCE_EXHAUSTED
  // before they are read whole.
  int max_receive_message_bytes = 256 << 20;
  // TLS (see ServerCredentialsFor); null: plaintext.
  std::shared_ptr<grpc::ServerCredentials> credentials;
};

// Serves `services` on `listen` (host:port; port 0 picks a free one) with
// `options.credentials`, with the standard
// grpc.health.v1 service, until SIGINT or SIGTERM (which the caller has
// blocked, see termination_signal.h). Then health says NOT_SERVING, and the
// work in flight gets `drain_timeout` to end (see `draining`) before the
// server stops.
// Once serving it prints "<name> listening on HOST:PORT" on stdout: scripts
// and tests that start the process with port 0 read the address from it.
// Fails when the address cannot be bound.
absl::Status ServeUntilTerminated(const std::vector<grpc::Service*>& services,
                                  const std::string& listen,
                                  const std::string& name,
                                  const ServeOptions& options = {});

}  // namespace moe

#endif  // MOE_RPC_SERVER_RUNNER_H_

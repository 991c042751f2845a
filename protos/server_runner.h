#ifndef MOE_PROTOS_SERVER_RUNNER_H_
#define MOE_PROTOS_SERVER_RUNNER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/server.h"

namespace moe {

struct RunningServer {
  std::unique_ptr<grpc::Server> server;
  std::string address;  // host:port actually bound (port 0 picks a free one)
};

// Starts a server for `services` on `listen` (host:port, insecure: the
// cluster runs on a private network), with the standard grpc.health.v1
// service reporting SERVING. Messages up to `max_message_bytes` are accepted.
absl::StatusOr<RunningServer> StartServer(
    const std::vector<grpc::Service*>& services, const std::string& listen,
    int max_message_bytes = 256 << 20);

// Prints "<name> listening on <address>" on stdout and flushes it: scripts
// and tests that start the process with port 0 read the address from it.
void AnnounceAddress(const std::string& name, const std::string& address);

}  // namespace moe

#endif  // MOE_PROTOS_SERVER_RUNNER_H_

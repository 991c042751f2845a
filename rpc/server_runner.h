#ifndef MOE_RPC_SERVER_RUNNER_H_
#define MOE_RPC_SERVER_RUNNER_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "grpcpp/impl/codegen/service_type.h"

namespace moe {

// Serves `services` on `listen` (host:port, insecure: the cluster runs on a
// private network; port 0 picks a free one), with the standard
// grpc.health.v1 service reporting SERVING, until SIGINT or SIGTERM (which
// the caller has blocked, see termination_signal.h); calls still open then
// get two seconds to end. Once serving it prints "<name> listening on
// HOST:PORT" on stdout: scripts and tests that start the process with port 0
// read the address from it. Fails when the address cannot be bound.
absl::Status ServeUntilTerminated(const std::vector<grpc::Service*>& services,
                                  const std::string& listen,
                                  const std::string& name);

}  // namespace moe

#endif  // MOE_RPC_SERVER_RUNNER_H_

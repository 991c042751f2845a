#ifndef MOE_RPC_SERVER_FLAGS_H_
#define MOE_RPC_SERVER_FLAGS_H_

#include <string>

#include "absl/status/statusor.h"
#include "rpc/server_runner.h"
#include "rpc/transport_security.h"

namespace moe {

// The flags every service shares (--drain-timeout-s,
// --max-connection-age-s, --keepalive-interval-ms, --insecure and the TLS
// files) as ServeOptions; the
// service listens on `listen` with TLS from --tls-cert, --tls-key and
// --tls-ca (`clients` says whether its clients must present a certificate),
// or in plaintext, which only loopback addresses get without --insecure.
// INVALID_ARGUMENT naming the flag when one is out of range. Read before
// the service loads anything, so a refusal comes at once; the caller sets
// the health predicate and the draining hooks.
absl::StatusOr<ServeOptions> ServeOptionsFromFlags(const std::string& listen,
                                                   ClientCertificates clients);

}  // namespace moe

#endif  // MOE_RPC_SERVER_FLAGS_H_

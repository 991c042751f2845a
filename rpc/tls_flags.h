#ifndef MOE_RPC_TLS_FLAGS_H_
#define MOE_RPC_TLS_FLAGS_H_

#include "absl/status/statusor.h"
#include "rpc/transport_security.h"

namespace moe {

// --tls-cert, --tls-key and --tls-ca, read (see ReadTlsConfig). Servers
// serve with them and use them as clients of the services they call;
// clients (moe-cli, moe-admin, moe-bench) present and check with them.
absl::StatusOr<TlsConfig> TlsConfigFromFlags();

}  // namespace moe

#endif  // MOE_RPC_TLS_FLAGS_H_

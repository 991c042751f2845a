#include "rpc/tls_flags.h"

#include <string>

#include "absl/flags/flag.h"

ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain to serve with, and to present as a client "
          "(mTLS); with --tls-key");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls-cert");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM CA certificate that peers' certificates must be signed by; "
          "a client given it connects with TLS");

namespace moe {

absl::StatusOr<TlsConfig> TlsConfigFromFlags() {
  return ReadTlsConfig(absl::GetFlag(FLAGS_tls_cert),
                       absl::GetFlag(FLAGS_tls_key),
                       absl::GetFlag(FLAGS_tls_ca));
}

}  // namespace moe

#ifndef MOE_RPC_TRANSPORT_SECURITY_H_
#define MOE_RPC_TRANSPORT_SECURITY_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"

namespace moe {

// The TLS material of a service or a client, as PEM text.
struct TlsConfig {
  std::string cert;  // own certificate chain; empty: none
  std::string key;   // its private key
  std::string ca;    // the CA that signs the peers; empty: none
};

// Reads the PEM files named by --tls-cert, --tls-key and --tls-ca (empty
// names are left empty). INVALID_ARGUMENT naming the flag when a file
// cannot be read, or when a certificate comes without its key or a key
// without its certificate.
absl::StatusOr<TlsConfig> ReadTlsConfig(const std::string& cert_file,
                                        const std::string& key_file,
                                        const std::string& ca_file);

// Whether a server's clients must present a certificate signed by the CA
// (the internal ports: router and workers), or may (the gateway's public
// port: a certificate sent is checked, none is fine).
enum class ClientCertificates { kOptional, kRequired };

// The credentials a server on `listen` (host:port) serves with: TLS with
// the config's certificate, clients checked against its CA as `clients`
// says; plaintext when it has no certificate, which a server refuses on an
// address other than loopback unless `insecure` (INVALID_ARGUMENT saying
// so).
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFor(
    const TlsConfig& tls, const std::string& listen, ClientCertificates clients,
    bool insecure);

// The credentials of a client: TLS when the config has a CA (the server
// checked against it) or a certificate (presented to the server; the
// server then checked against the system's roots unless a CA is given);
// plaintext otherwise.
std::shared_ptr<grpc::ChannelCredentials> ChannelCredentialsFor(
    const TlsConfig& tls);

// "127.0.0.1", "::1", "[::1]", "localhost" and the rest of 127.0.0.0/8.
bool IsLoopbackHost(const std::string& host);

}  // namespace moe

#endif  // MOE_RPC_TRANSPORT_SECURITY_H_

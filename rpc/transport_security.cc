#include "rpc/transport_security.h"

#include <arpa/inet.h>

#include "absl/strings/str_cat.h"
#include "core/util/file_util.h"

namespace moe {
namespace {

// The PEM text of `file` (empty for no file), or the flag's error.
absl::StatusOr<std::string> ReadPem(const std::string& file,
                                    const std::string& flag) {
  if (file.empty()) return std::string();
  absl::StatusOr<std::string> text = ReadFileToString(file);
  if (!text.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, ": cannot read ", file, ": ", text.status().message()));
  }
  if (text->find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": ", file, " is not PEM"));
  }
  return text;
}

}  // namespace

absl::StatusOr<TlsConfig> ReadTlsConfig(const std::string& cert_file,
                                        const std::string& key_file,
                                        const std::string& ca_file) {
  if (cert_file.empty() != key_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls-cert and --tls-key come together: a certificate and its key");
  }
  TlsConfig tls;
  absl::StatusOr<std::string> cert = ReadPem(cert_file, "--tls-cert");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadPem(key_file, "--tls-key");
  if (!key.ok()) return key.status();
  absl::StatusOr<std::string> ca = ReadPem(ca_file, "--tls-ca");
  if (!ca.ok()) return ca.status();
  tls.cert = *std::move(cert);
  tls.key = *std::move(key);
  tls.ca = *std::move(ca);
  return tls;
}

bool IsLoopbackHost(const std::string& host) {
  if (host == "localhost" || host == "::1" || host == "[::1]") return true;
  in_addr address;
  return inet_pton(AF_INET, host.c_str(), &address) == 1 &&
         (ntohl(address.s_addr) >> 24) == 127;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFor(
    const TlsConfig& tls, const std::string& listen, ClientCertificates clients,
    bool insecure) {
  if (tls.cert.empty()) {
    const std::string host = listen.substr(0, listen.rfind(':'));
    if (!IsLoopbackHost(host) && !insecure) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--listen ", listen,
          " is not loopback: serving it without TLS needs --insecure (or "
          "give --tls-cert, --tls-key and --tls-ca; scripts/make-certs.sh "
          "makes them)"));
    }
    return grpc::InsecureServerCredentials();
  }
  if (clients == ClientCertificates::kRequired && tls.ca.empty()) {
    return absl::InvalidArgumentError(
        "--tls-ca is needed: this service checks its clients' certificates "
        "against it (mTLS)");
  }
  grpc::SslServerCredentialsOptions options(
      clients == ClientCertificates::kRequired
          ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
      : tls.ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                       : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = tls.ca;
  options.pem_key_cert_pairs.push_back({tls.key, tls.cert});
  return grpc::SslServerCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> ChannelCredentialsFor(
    const TlsConfig& tls) {
  if (tls.ca.empty() && tls.cert.empty()) {
    return grpc::InsecureChannelCredentials();
  }
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = tls.ca;
  options.pem_private_key = tls.key;
  options.pem_cert_chain = tls.cert;
  return grpc::SslCredentials(options);
}

}  // namespace moe

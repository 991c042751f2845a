#include "rpc/server_flags.h"

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"
#include "rpc/tls_flags.h"

ABSL_FLAG(int, drain_timeout_s, 10,
          "after SIGTERM: NOT_SERVING at once, then up to this many seconds "
          "for the calls in flight to end");

ABSL_FLAG(int, max_connection_age_s, 0,
          "close client connections older than this gracefully, so clients "
          "resolve this server's name again and find new copies behind it "
          "(a Kubernetes Service's new pods); 0: never");

ABSL_FLAG(int, keepalive_interval_ms, 5000,
          "ping interval of links between services: this service pings its "
          "servers this often and accepts pings half as far apart; every "
          "service of a cluster takes the same");

ABSL_FLAG(bool, insecure, false,
          "serve without TLS on an address other than loopback");

namespace moe {

absl::StatusOr<ServeOptions> ServeOptionsFromFlags(const std::string& listen,
                                                   ClientCertificates clients) {
  const int drain = absl::GetFlag(FLAGS_drain_timeout_s);
  if (drain < 0 || drain > 24 * 3600) {
    return absl::InvalidArgumentError(
        absl::StrCat("--drain-timeout-s must be in [0, 86400], got ", drain));
  }
  const int age = absl::GetFlag(FLAGS_max_connection_age_s);
  if (age < 0 || age > 24 * 3600) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max-connection-age-s must be in [0, 86400], got ", age));
  }
  const int keepalive = absl::GetFlag(FLAGS_keepalive_interval_ms);
  if (keepalive < 100 || keepalive > 3600 * 1000) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--keepalive-interval-ms must be in [100, 3600000], got ", keepalive));
  }
  ServeOptions options;
  MOE_ASSIGN_OR_RETURN(const TlsConfig tls, TlsConfigFromFlags());
  MOE_ASSIGN_OR_RETURN(options.credentials,
                       ServerCredentialsFor(tls, listen, clients,
                                            absl::GetFlag(FLAGS_insecure)));
  options.drain_timeout = absl::Seconds(drain);
  options.max_connection_age = absl::Seconds(age);
  options.keepalive_interval = absl::Milliseconds(keepalive);
  return options;
}

}  // namespace moe

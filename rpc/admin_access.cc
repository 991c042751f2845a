#include "rpc/admin_access.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "rpc/transport_security.h"

namespace moe {

bool IsLoopbackPeer(std::string_view peer) {
  if (peer.starts_with("unix:")) return true;
  if (!peer.starts_with("ipv4:") && !peer.starts_with("ipv6:")) return false;
  // "127.0.0.1", "[::1]", or "%5B::1%5D" as some versions escape brackets.
  const std::string_view host = peer.substr(5, peer.rfind(':') - 5);
  return host == "%5B::1%5D" || IsLoopbackHost(std::string(host));
}

absl::Status AdminAccess::Check(const grpc::ServerContextBase& context,
                                absl::string_view method) const {
  const std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  const std::vector<grpc::string_ref> security =
      auth->FindPropertyValues("transport_security_type");
  const bool tls = !security.empty() && security.front() == "ssl";
  if (!tls) {
    if (IsLoopbackPeer(context.peer())) return absl::OkStatus();
    return absl::PermissionDeniedError(absl::StrCat(
        method, " is served without TLS only to clients on loopback, not ",
        context.peer()));
  }
  for (const grpc::string_ref& name :
       auth->FindPropertyValues("x509_common_name")) {
    for (const std::string& identity : identities_) {
      if (std::string_view(name.data(), name.size()) == identity) {
        return absl::OkStatus();
      }
    }
  }
  return absl::PermissionDeniedError(absl::StrCat(
      method, " needs a client certificate named ",
      absl::StrJoin(identities_, " or "), " (--admin-identities)"));
}

}  // namespace moe

#include "protos/server_runner.h"

#include <iostream>

#include "absl/strings/str_cat.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"

namespace moe {

absl::StatusOr<RunningServer> StartServer(
    const std::vector<grpc::Service*>& services, const std::string& listen,
    int max_message_bytes) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--listen: \"", listen, "\" is not host:port"));
  }
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(max_message_bytes);
  builder.SetMaxSendMessageSize(max_message_bytes);
  for (grpc::Service* service : services) builder.RegisterService(service);
  RunningServer running;
  running.server = builder.BuildAndStart();
  if (running.server == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", listen, " (address in use or not local?)"));
  }
  running.address = absl::StrCat(listen.substr(0, colon), ":", port);
  return running;
}

void AnnounceAddress(const std::string& name, const std::string& address) {
  std::cout << name << " listening on " << address << std::endl;
}

}  // namespace moe

#include "rpc/server_runner.h"

#include <chrono>
#include <iostream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "core/util/termination_signal.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"

namespace moe {

absl::Status ServeUntilTerminated(const std::vector<grpc::Service*>& services,
                                  const std::string& listen,
                                  const std::string& name) {
  constexpr int kMaxMessageBytes = 256 << 20;
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--listen: \"", listen, "\" is not host:port"));
  }
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  for (grpc::Service* service : services) builder.RegisterService(service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", listen, " (address in use or not local?)"));
  }
  std::cout << name << " listening on " << listen.substr(0, colon) << ":"
            << port << std::endl;
  WaitForTerminationSignal();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return absl::OkStatus();
}

}  // namespace moe

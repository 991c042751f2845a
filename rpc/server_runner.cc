#include "rpc/server_runner.h"

#include <chrono>
#include <iostream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/util/termination_signal.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"

namespace moe {

absl::Status ServeUntilTerminated(const std::vector<grpc::Service*>& services,
                                  const std::string& listen,
                                  const std::string& name,
                                  const ServeOptions& options) {
  constexpr int kMaxSendMessageBytes = 256 << 20;
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--listen: \"", listen, "\" is not host:port"));
  }
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen,
                           options.credentials != nullptr
                               ? options.credentials
                               : grpc::InsecureServerCredentials(),
                           &port);
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  builder.SetMaxSendMessageSize(kMaxSendMessageBytes);
  SetServerKeepalive(options.keepalive_interval, builder);
  if (options.max_connection_age > absl::ZeroDuration()) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                               static_cast<int>(absl::ToInt64Milliseconds(
                                   options.max_connection_age)));
  }
  for (grpc::Service* service : services) builder.RegisterService(service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", listen, " (address in use or not local?)"));
  }
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  bool serving = true;
  auto report = [&](bool now) {
    if (now == serving) return;
    serving = now;
    health->SetServingStatus(now);
    std::cerr << name << ": " << (now ? "SERVING" : "NOT_SERVING") << std::endl;
  };
  if (options.serving) report(options.serving());
  std::cout << name << " listening on " << listen.substr(0, colon) << ":"
            << port << std::endl;
  while (WaitForTerminationSignalFor(100) == 0) {
    if (options.serving) report(options.serving());
  }
  report(false);
  std::cerr << name << ": draining, up to "
            << absl::FormatDuration(options.drain_timeout) << std::endl;
  const absl::Time give_up = absl::Now() + options.drain_timeout;
  if (options.draining != nullptr) options.draining->store(true);
  if (options.idle) {
    while (!options.idle() && absl::Now() < give_up) {
      absl::SleepFor(absl::Milliseconds(20));
    }
  }
  server->Shutdown(absl::ToChronoTime(give_up));
  return absl::OkStatus();
}

}  // namespace moe

#ifndef MOE_TESTS_SUPPORT_LOCAL_SERVER_H_
#define MOE_TESTS_SUPPORT_LOCAL_SERVER_H_

#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"

namespace moe::testing {

// One service served on 127.0.0.1 at a free port; shut down when destroyed,
// with a second's grace for calls in flight.
class LocalServer {
 public:
  explicit LocalServer(grpc::Service& service) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(&service);
    server_ = builder.BuildAndStart();
  }
  ~LocalServer() {
    if (server_ != nullptr)
      server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
  }

  bool started() const { return server_ != nullptr && port_ > 0; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace moe::testing

#endif  // MOE_TESTS_SUPPORT_LOCAL_SERVER_H_

#include "tests/support/raw_grpc.h"

#include <chrono>
#include <future>
#include <vector>

#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/support/byte_buffer.h"

namespace moe::testing {

grpc::Status RawUnaryCall(const std::string& address, const std::string& method,
                          const std::string& request_bytes,
                          std::string& response_bytes) {
  grpc::GenericStub stub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer request(&slice, 1), response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, method, grpc::StubOptions(), &request, &response,
                 [&](grpc::Status status) { done.set_value(status); });
  const grpc::Status status = done.get_future().get();
  std::vector<grpc::Slice> slices;
  if (status.ok() && response.Dump(&slices).ok()) {
    for (const grpc::Slice& s : slices) {
      response_bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
  }
  return status;
}

std::string HealthStatus(const std::string& address) {
  std::string response;
  const grpc::Status status =
      RawUnaryCall(address, "/grpc.health.v1.Health/Check", "", response);
  if (!status.ok()) return status.error_message();
  // HealthCheckResponse{status}: field 1, a varint; 1 SERVING, 2 NOT_SERVING.
  if (response == std::string("\x08\x01", 2)) return "SERVING";
  if (response == std::string("\x08\x02", 2)) return "NOT_SERVING";
  return "unexpected response";
}

}  // namespace moe::testing

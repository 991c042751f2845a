#ifndef MOE_TESTS_SUPPORT_RAW_GRPC_H_
#define MOE_TESTS_SUPPORT_RAW_GRPC_H_

#include <string>

#include "grpcpp/grpcpp.h"

namespace moe::testing {

// A unary call by method name with raw bytes, for the services whose protos
// this build does not generate (health, reflection).
grpc::Status RawUnaryCall(const std::string& address, const std::string& method,
                          const std::string& request_bytes,
                          std::string& response_bytes);

// grpc.health.v1.Health/Check of the server's overall status: "SERVING",
// "NOT_SERVING", or the call's error.
std::string HealthStatus(const std::string& address);

}  // namespace moe::testing

#endif  // MOE_TESTS_SUPPORT_RAW_GRPC_H_

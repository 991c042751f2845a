#ifndef MOE_RPC_GRPC_STATUS_H_
#define MOE_RPC_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace moe {

// The two status types share their code numbering.
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace moe

#endif  // MOE_RPC_GRPC_STATUS_H_

#ifndef MOE_CORE_NCCL_PAYLOAD_PIPE_H_
#define MOE_CORE_NCCL_PAYLOAD_PIPE_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/announced_link.h"

namespace moe {

// A new NCCL unique id (its 128 bytes) for one direction of a link. Builds
// without CUDA or NCCL answer FAILED_PRECONDITION.
absl::StatusOr<std::string> NewNcclLinkId();

// One end of a payload pipe between two GPUs over NCCL point-to-point (see
// core/cuda/nccl_pipe.h): the router is rank 0 and the worker rank 1;
// `send_id` names the communicator this end sends on, `receive_id` the one
// it receives on (the other end passes them swapped). UNAVAILABLE when the
// other end has not joined within `timeout` (or before another thread set
// *abandoned: it will not) or NCCL fails.
absl::StatusOr<std::unique_ptr<PayloadPipe>> ConnectNcclPayloadPipe(
    int device, int rank, const std::string& send_id,
    const std::string& receive_id, absl::Duration timeout,
    const std::atomic<bool>* abandoned = nullptr);

}  // namespace moe

#endif  // MOE_CORE_NCCL_PAYLOAD_PIPE_H_

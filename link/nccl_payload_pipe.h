#ifndef MOE_LINK_NCCL_PAYLOAD_PIPE_H_
#define MOE_LINK_NCCL_PAYLOAD_PIPE_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "link/announced_link.h"

namespace moe {

// A new NCCL unique id (its 128 bytes) for one direction of a link. Builds
// without CUDA or NCCL answer FAILED_PRECONDITION.
absl::StatusOr<std::string> NewNcclLinkId();

// One end of a payload pipe between two GPUs over NCCL point-to-point (see
// link/cuda/nccl_pipe.h): the router is rank 0 and the worker rank 1;
// `send_id` names the communicator this end sends on, `receive_id` the one
// it receives on (the other end passes them swapped). UNAVAILABLE when the
// other end has not joined within `timeout`, or earlier once `abandoned`
// (polled while waiting) says it will not, or NCCL fails.
absl::StatusOr<std::unique_ptr<PayloadPipe>> ConnectNcclPayloadPipe(
    int device, int rank, const std::string& send_id,
    const std::string& receive_id, absl::Duration timeout,
    std::function<bool()> abandoned = nullptr);

}  // namespace moe

#endif  // MOE_LINK_NCCL_PAYLOAD_PIPE_H_

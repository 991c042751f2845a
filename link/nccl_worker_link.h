#ifndef MOE_LINK_NCCL_WORKER_LINK_H_
#define MOE_LINK_NCCL_WORKER_LINK_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "link/message_link.h"
#include "moe/v1/expert.grpc.pb.h"

namespace moe {

// Opens an activation link to a GPU worker over NCCL: makes the unique ids
// of its two communicators, hands them to the worker with ExpertLink.OpenNccl
// and joins as rank 0 on `device` while the worker joins as rank 1, then
// opens the gRPC stream that announces each payload (NewAnnouncedLink) and
// on which the worker's death shows at once. Fails (naming the step) when
// either side could not join within `timeout`, which also bounds how long an
// announced payload may take. The stream names the link by a random id, by
// which the worker pairs it with the NCCL pipe it joined.
absl::StatusOr<std::unique_ptr<MessageLink>> OpenNcclWorkerLink(
    v1::ExpertLink::Stub& stub, int device, absl::Duration timeout);

}  // namespace moe

#endif  // MOE_LINK_NCCL_WORKER_LINK_H_

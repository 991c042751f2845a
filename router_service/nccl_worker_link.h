#ifndef MOE_ROUTER_SERVICE_NCCL_WORKER_LINK_H_
#define MOE_ROUTER_SERVICE_NCCL_WORKER_LINK_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/message_link.h"
#include "moe/v1/expert.grpc.pb.h"

namespace moe {

// Opens an activation link to a GPU worker over NCCL: makes the unique ids
// of its two communicators, hands them to the worker with ExpertLink.OpenNccl
// and joins as rank 0 on `device` while the worker joins as rank 1. Fails
// (naming the step) when either side could not join within `timeout`. The
// link is watched over a gRPC stream to the worker (WithLifeline), so a
// worker that dies fails the calls waiting for it at once.
// `router_id` names this router to the worker, whose earlier link from the
// same router the new one replaces.
absl::StatusOr<std::unique_ptr<MessageLink>> OpenNcclWorkerLink(
    v1::ExpertLink::Stub& stub, const std::string& router_id, int device,
    absl::Duration timeout);

}  // namespace moe

#endif  // MOE_ROUTER_SERVICE_NCCL_WORKER_LINK_H_

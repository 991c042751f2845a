#ifndef MOE_EXPERT_WORKER_LINK_SERVER_H_
#define MOE_EXPERT_WORKER_LINK_SERVER_H_

#include "core/model/model_config.h"
#include "expert_worker/compute_queue.h"
#include "expert_worker/compute_request.h"
#include "link/message_link.h"

namespace moe {

// Answers the LinkRequests arriving on `link` with one LinkReply each, in the
// order they came, until the link breaks or the router closes it. Requests go
// to the compute queue as they arrive, so they batch with the calls of other
// links and RPCs; a second thread sends the replies in order. Returns once
// every accepted request is answered (or the link is gone).
void ServeLink(MessageLink& link, const ModelConfig& config,
               const WorkerIdentity& identity, ComputeQueue& queue);

}  // namespace moe

#endif  // MOE_EXPERT_WORKER_LINK_SERVER_H_

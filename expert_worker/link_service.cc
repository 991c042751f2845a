#include "expert_worker/link_service.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "expert_worker/link_server.h"
#include "link/grpc_message_link.h"
#include "link/nccl_payload_pipe.h"
#include "rpc/grpc_status.h"

namespace moe {

ExpertLinkService::NcclJoiner ExpertLinkService::NcclJoinerFor(int device) {
  return [device](const v1::NcclLinkRequest& request,
                  std::function<bool()> abandoned) {
    return ConnectNcclPayloadPipe(
        device, /*rank=*/1, request.worker_to_router_id(),
        request.router_to_worker_id(),
        absl::Milliseconds(request.connect_timeout_ms()), std::move(abandoned));
  };
}

grpc::Status ExpertLinkService::Stream(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::LinkFrame, v1::LinkFrame>* stream) {
  const std::string link_id = NcclLinkIdOf(*context);
  if (link_id.empty()) {
    ServeLink(*ServeGrpcStreamLink(*context, *stream), config_, identity_,
              queue_);
    return grpc::Status::OK;
  }
  // Taken before the stream link exists: closing one cancels the call,
  // which would hide the error.
  absl::StatusOr<JoinedPipe> joined = TakeNcclPipe(link_id);
  if (!joined.ok()) return ToGrpcStatus(joined.status());
  // The stream's end (the router closed the link, or died) also ends a
  // payload wait.
  PayloadPipe* payloads = joined->pipe.get();
  ServeLink(
      *NewAnnouncedLink(ServeGrpcStreamLink(*context, *stream,
                                            [payloads] { payloads->Close(); }),
                        std::move(joined->pipe), joined->payload_timeout),
      config_, identity_, queue_);
  return grpc::Status::OK;
}

void ExpertLinkService::DropOverdueLocked(std::vector<JoinedPipe>& dropped) {
  const absl::Time now = absl::Now();
  for (auto it = nccl_pipes_.begin(); it != nccl_pipes_.end();) {
    if (it->second.take_by < now) {
      dropped.push_back(std::move(it->second));
      it = nccl_pipes_.erase(it);
    } else {
      ++it;
    }
  }
}

absl::StatusOr<ExpertLinkService::JoinedPipe> ExpertLinkService::TakeNcclPipe(
    const std::string& link_id) {
  std::vector<JoinedPipe> dropped;  // closed once unlocked
  std::lock_guard<std::mutex> lock(pipes_mutex_);
  DropOverdueLocked(dropped);
  auto found = nccl_pipes_.find(link_id);
  if (found == nccl_pipes_.end()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "expert worker ", identity_.id, " has no NCCL link joined as ", link_id,
        " (ExpertLink.OpenNccl comes first, and the stream "
        "within its join timeout)"));
  }
  JoinedPipe joined = std::move(found->second);
  nccl_pipes_.erase(found);
  return joined;
}

grpc::Status ExpertLinkService::OpenNccl(grpc::ServerContext* context,
                                         const v1::NcclLinkRequest* request,
                                         v1::NcclLinkReply* reply) {
  if (!join_nccl_) {
    return ToGrpcStatus(absl::FailedPreconditionError(
        absl::StrCat("expert worker ", identity_.id,
                     " computes on the CPU: it takes activations over gRPC, "
                     "not NCCL")));
  }
  if (request->link_id().empty()) {
    return ToGrpcStatus(
        absl::InvalidArgumentError("NcclLinkRequest.link_id is empty"));
  }
  const absl::Duration timeout =
      absl::Milliseconds(request->connect_timeout_ms());
  // A router that gave up (its call cancelled or past its deadline) will
  // not join: stop waiting for it.
  absl::StatusOr<std::unique_ptr<PayloadPipe>> pipe =
      join_nccl_(*request, [context] { return context->IsCancelled(); });
  if (!pipe.ok()) return ToGrpcStatus(pipe.status());
  std::vector<JoinedPipe> dropped;  // closed once unlocked
  {
    std::lock_guard<std::mutex> lock(pipes_mutex_);
    DropOverdueLocked(dropped);
    nccl_pipes_[request->link_id()] =
        JoinedPipe{std::move(*pipe), timeout, absl::Now() + timeout};
  }
  reply->set_device(identity_.device);
  return grpc::Status::OK;
}

}  // namespace moe

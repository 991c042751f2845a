#include "expert_worker/link_service.h"

#include "absl/strings/str_cat.h"
#include "core/nccl_payload_pipe.h"
#include "expert_worker/link_server.h"
#include "protos/grpc_message_link.h"
#include "protos/grpc_status.h"

namespace moe {

grpc::Status ExpertLinkService::Stream(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::LinkFrame, v1::LinkFrame>* stream) {
  const std::string router_id = NcclRouterIdOf(*context);
  if (router_id.empty()) {
    ServeLink(*ServeGrpcStreamLink(*context, *stream), config_, identity_,
              queue_);
    return grpc::Status::OK;
  }
  // Taken before the stream link exists: closing one cancels the call,
  // which would hide the error.
  absl::StatusOr<JoinedPipe> joined = TakeNcclPipe(router_id);
  if (!joined.ok()) return ToGrpcStatus(joined.status());
  ServeLink(*NewAnnouncedLink(ServeGrpcStreamLink(*context, *stream),
                              std::move(joined->pipe), joined->payload_timeout),
            config_, identity_, queue_);
  return grpc::Status::OK;
}

absl::StatusOr<ExpertLinkService::JoinedPipe> ExpertLinkService::TakeNcclPipe(
    const std::string& router_id) {
  std::lock_guard<std::mutex> lock(pipes_mutex_);
  auto found = nccl_pipes_.find(router_id);
  if (found == nccl_pipes_.end()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "expert worker ", identity_.id, " has no NCCL link joined for router ",
        router_id, " (ExpertLink.OpenNccl comes first)"));
  }
  JoinedPipe joined = std::move(found->second);
  nccl_pipes_.erase(found);
  return joined;
}

grpc::Status ExpertLinkService::OpenNccl(grpc::ServerContext*,
                                         const v1::NcclLinkRequest* request,
                                         v1::NcclLinkReply* reply) {
  if (device_ < 0) {
    return ToGrpcStatus(absl::FailedPreconditionError(
        absl::StrCat("expert worker ", identity_.id,
                     " computes on the CPU: it takes activations over gRPC, "
                     "not NCCL")));
  }
  const absl::Duration timeout =
      absl::Milliseconds(request->connect_timeout_ms());
  absl::StatusOr<std::unique_ptr<PayloadPipe>> pipe;
  {
    std::lock_guard<std::mutex> lock(open_mutex_);
    pipe = ConnectNcclPayloadPipe(device_, /*rank=*/1,
                                  request->worker_to_router_id(),
                                  request->router_to_worker_id(), timeout);
  }
  if (!pipe.ok()) return ToGrpcStatus(pipe.status());
  JoinedPipe replaced;  // a pipe whose Stream call never came; freed unlocked
  {
    std::lock_guard<std::mutex> lock(pipes_mutex_);
    JoinedPipe& joined = nccl_pipes_[request->router_id()];
    replaced = std::move(joined);
    joined = JoinedPipe{std::move(*pipe), timeout};
  }
  reply->set_device(identity_.device);
  return grpc::Status::OK;
}

}  // namespace moe

#include "expert_worker/link_service.h"

#include "absl/strings/str_cat.h"
#include "core/nccl_message_link.h"
#include "expert_worker/link_server.h"
#include "protos/grpc_message_link.h"
#include "protos/grpc_status.h"

namespace moe {

ExpertLinkService::~ExpertLinkService() {
  std::lock_guard<std::mutex> lock(nccl_mutex_);
  RetireNcclLink();
}

void ExpertLinkService::RetireNcclLink() {
  if (nccl_link_) nccl_link_->Close();
  if (nccl_server_.joinable()) nccl_server_.join();
  nccl_link_.reset();
}

grpc::Status ExpertLinkService::Stream(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::LinkFrame, v1::LinkFrame>* stream) {
  std::unique_ptr<MessageLink> link = ServeGrpcStreamLink(*context, *stream);
  ServeLink(*link, config_, identity_, queue_);
  return grpc::Status::OK;
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
  std::lock_guard<std::mutex> lock(nccl_mutex_);
  // Joined first, while the router waits for it; the old link (the router
  // opens a new one only when it gave the old one up) is retired after,
  // which waits for the answers it still owes.
  absl::StatusOr<std::unique_ptr<MessageLink>> link =
      ConnectNcclLink(device_, /*rank=*/1, request->worker_to_router_id(),
                      request->router_to_worker_id(),
                      absl::Milliseconds(request->connect_timeout_ms()));
  if (!link.ok()) return ToGrpcStatus(link.status());
  RetireNcclLink();
  nccl_link_ = std::move(*link);
  nccl_server_ = std::thread([this, link = nccl_link_.get()] {
    ServeLink(*link, config_, identity_, queue_);
  });
  reply->set_device(identity_.device);
  return grpc::Status::OK;
}

}  // namespace moe

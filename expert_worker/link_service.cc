#include "expert_worker/link_service.h"

#include "absl/strings/str_cat.h"
#include "core/nccl_message_link.h"
#include "expert_worker/link_server.h"
#include "protos/grpc_message_link.h"
#include "protos/grpc_status.h"

namespace moe {

ExpertLinkService::~ExpertLinkService() {
  std::lock_guard<std::mutex> lock(nccl_mutex_);
  for (auto& [router, link] : nccl_links_) Retire(link);
}

void ExpertLinkService::Retire(NcclLink& link) {
  if (link.link) link.link->Close();
  if (link.server.joinable()) link.server.join();
  link.link.reset();
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
  // Joined first, while the router waits for it; the router's old link (it
  // opens a new one only when it gave the old one up) is retired after,
  // which waits for the answers it still owes.
  absl::StatusOr<std::unique_ptr<MessageLink>> link =
      ConnectNcclLink(device_, /*rank=*/1, request->worker_to_router_id(),
                      request->router_to_worker_id(),
                      absl::Milliseconds(request->connect_timeout_ms()));
  if (!link.ok()) return ToGrpcStatus(link.status());
  NcclLink& served = nccl_links_[request->router_id()];
  Retire(served);
  served.link = std::move(*link);
  served.server = std::thread([this, link = served.link.get()] {
    ServeLink(*link, config_, identity_, queue_);
  });
  reply->set_device(identity_.device);
  return grpc::Status::OK;
}

}  // namespace moe

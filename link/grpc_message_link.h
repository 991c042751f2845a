#ifndef MOE_LINK_GRPC_MESSAGE_LINK_H_
#define MOE_LINK_GRPC_MESSAGE_LINK_H_

#include <functional>
#include <memory>
#include <string>

#include "grpcpp/server_context.h"
#include "grpcpp/support/sync_stream.h"
#include "link/message_link.h"
#include "moe/v1/expert.grpc.pb.h"

namespace moe {

// The client metadata by which a Stream call names the NCCL link (its
// NcclLinkRequest.link_id) it carries the announcements of.
inline constexpr char kNcclLinkIdKey[] = "moe-nccl-link-id";

// The router's end of a link over an ExpertLink.Stream call on `stub`'s
// channel. The call starts at once; an unreachable worker shows as a failed
// Send or Receive. With `nccl_link_id`, the stream carries the
// announcements of the NCCL link opened with that id by OpenNccl (see
// link/announced_link.h) rather than whole messages. `on_end`, when given,
// runs (on the link's reader thread) once the stream has ended, for
// whatever must end with it.
std::unique_ptr<MessageLink> OpenGrpcStreamLink(
    v1::ExpertLink::Stub& stub, const std::string& nccl_link_id = "",
    std::function<void()> on_end = nullptr);

// The NCCL link id a Stream call names; empty for a stream that carries
// whole messages.
std::string NcclLinkIdOf(const grpc::ServerContext& context);

// The worker's end of an ExpertLink.Stream call, for the length of the call;
// `on_end` as above.
std::unique_ptr<MessageLink> ServeGrpcStreamLink(
    grpc::ServerContext& context,
    grpc::ServerReaderWriter<v1::LinkFrame, v1::LinkFrame>& stream,
    std::function<void()> on_end = nullptr);

}  // namespace moe

#endif  // MOE_LINK_GRPC_MESSAGE_LINK_H_

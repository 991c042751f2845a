#ifndef MOE_PROTOS_GRPC_MESSAGE_LINK_H_
#define MOE_PROTOS_GRPC_MESSAGE_LINK_H_

#include <memory>

#include "core/message_link.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/sync_stream.h"
#include "moe/v1/expert.grpc.pb.h"

namespace moe {

// The router's end of a link over an ExpertLink.Stream call on `stub`'s
// channel. The call starts at once; an unreachable worker shows as a failed
// Send or Receive.
std::unique_ptr<MessageLink> OpenGrpcStreamLink(v1::ExpertLink::Stub& stub);

// The worker's end of an ExpertLink.Stream call, for the length of the call.
std::unique_ptr<MessageLink> ServeGrpcStreamLink(
    grpc::ServerContext& context,
    grpc::ServerReaderWriter<v1::LinkFrame, v1::LinkFrame>& stream);

}  // namespace moe

#endif  // MOE_PROTOS_GRPC_MESSAGE_LINK_H_

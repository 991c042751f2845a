#ifndef MOE_RPC_KEEPALIVE_H_
#define MOE_RPC_KEEPALIVE_H_

#include "absl/time/time.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/support/channel_arguments.h"

namespace moe {

// Keepalive that both ends of a link between services agree on. Clients
// ping every `interval`, with or without calls open, so that a peer that
// vanished without closing its connections (a crash, a partition) is
// noticed within `interval` + `timeout`, also on an idle link. Servers
// accept pings half as far apart (timers drift), calls open or not.
//
// gRPC's defaults disagree with such clients: a server takes pings without
// calls no more often than every 5 minutes and answers more with GOAWAY
// "too_many_pings", and a client sends no more than two pings without data,
// and those at least 5 minutes apart.
inline constexpr absl::Duration kDefaultKeepaliveInterval = absl::Seconds(5);

void SetClientKeepalive(absl::Duration interval, absl::Duration timeout,
                        grpc::ChannelArguments& args);
void SetServerKeepalive(absl::Duration interval, grpc::ServerBuilder& builder);

}  // namespace moe

#endif  // MOE_RPC_KEEPALIVE_H_

#include "link/nccl_worker_link.h"

#include <atomic>
#include <future>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/util/status_macros.h"
#include "link/announced_link.h"
#include "link/grpc_message_link.h"
#include "link/nccl_payload_pipe.h"
#include "rpc/grpc_status.h"

namespace moe {

namespace {

// 128 random bits, in hex: unique to one link among all routers' links to
// a worker.
std::string NewLinkId() {
  std::random_device random;
  std::string id;
  for (int i = 0; i < 4; ++i) {
    absl::StrAppend(&id, absl::Hex(random(), absl::kZeroPad8));
  }
  return id;
}

}  // namespace

absl::StatusOr<std::unique_ptr<MessageLink>> OpenNcclWorkerLink(
    v1::ExpertLink::Stub& stub, int device, absl::Duration timeout) {
  MOE_ASSIGN_OR_RETURN(const std::string to_worker, NewNcclLinkId());
  MOE_ASSIGN_OR_RETURN(const std::string to_router, NewNcclLinkId());
  v1::NcclLinkRequest request;
  request.set_router_to_worker_id(to_worker);
  request.set_worker_to_router_id(to_router);
  request.set_connect_timeout_ms(absl::ToInt64Milliseconds(timeout));
  request.set_link_id(NewLinkId());
  v1::NcclLinkReply reply;
  grpc::ClientContext context;
  context.set_deadline(
      absl::ToChronoTime(absl::Now() + timeout + absl::Seconds(5)));
  // Both ends join at once: NCCL's join returns only when every rank came,
  // and the worker answers once it joined, so a failed answer means it will
  // not.
  std::promise<grpc::Status> answered;
  std::atomic<bool> worker_failed{false};
  stub.async()->OpenNccl(&context, &request, &reply, [&](grpc::Status status) {
    if (!status.ok()) worker_failed = true;
    answered.set_value(std::move(status));
  });
  absl::StatusOr<std::unique_ptr<PayloadPipe>> pipe =
      ConnectNcclPayloadPipe(device, /*rank=*/0, to_worker, to_router, timeout,
                             [&worker_failed] { return worker_failed.load(); });
  const grpc::Status worker_joined = answered.get_future().get();
  if (!worker_joined.ok()) {
    const absl::Status status = FromGrpcStatus(worker_joined);
    return absl::Status(
        status.code(), absl::StrCat("ExpertLink.OpenNccl: ", status.message()));
  }
  if (!pipe.ok()) return pipe.status();
  // The stream's end (the worker died) also ends a payload wait.
  PayloadPipe* payloads = pipe->get();
  return NewAnnouncedLink(OpenGrpcStreamLink(stub, request.link_id(),
                                             [payloads] { payloads->Close(); }),
                          std::move(*pipe), timeout);
}

}  // namespace moe

#ifndef MOE_LINK_MESSAGE_LINK_H_
#define MOE_LINK_MESSAGE_LINK_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace moe {

// An ordered, reliable channel of whole messages to one peer: what the
// router and an expert worker exchange activations over (a gRPC stream, or
// NCCL between GPUs). One thread may send while another receives. An error
// breaks the link for good: its messages in flight are lost, so the user
// fails what it was waiting for and opens a new link.
class MessageLink {
 public:
  virtual ~MessageLink() = default;

  // Queues one message; returns once `message` may be reused, without
  // waiting for the peer. UNAVAILABLE when the link is broken.
  virtual absl::Status Send(std::string_view message) = 0;

  // The next message. DEADLINE_EXCEEDED (the link is then broken) when none
  // arrived by `deadline`; UNAVAILABLE when the peer closed or the link broke.
  virtual absl::StatusOr<std::string> Receive(absl::Time deadline) = 0;

  // Breaks the link from any thread: a Receive blocked in another thread
  // returns UNAVAILABLE.
  virtual void Close() = 0;
};

}  // namespace moe

#endif  // MOE_LINK_MESSAGE_LINK_H_

#ifndef MOE_LINK_ANNOUNCED_LINK_H_
#define MOE_LINK_ANNOUNCED_LINK_H_

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "link/message_link.h"

namespace moe {

// Bulk bytes whose sizes the receiver learns elsewhere: the data half of an
// NCCL link (link/cuda/nccl_pipe.h). One thread may send while another
// receives; any error breaks the pipe for good.
class PayloadPipe {
 public:
  virtual ~PayloadPipe() = default;
  // Queues `payload`; returns once it may be reused, without waiting for the
  // peer.
  virtual absl::Status Send(std::string_view payload) = 0;
  // The next payload, which has `size` bytes.
  virtual absl::StatusOr<std::string> Receive(size_t size,
                                              absl::Time deadline) = 0;
  // Breaks the pipe from any thread.
  virtual void Close() = 0;
};

// The largest message an announced link receives (a 2048-row prefill of
// Skywork-MoE's hidden rows in float32 is 38 MB); a larger announcement
// breaks the link.
inline constexpr size_t kMaxAnnouncedBytes = size_t{1} << 30;

// A link that moves each message's bytes over `payloads`, then announces
// its size over `announcements` (a gRPC stream). A receiver posts a receive
// on the pipe only for a payload that was sent: an NCCL receive waiting for
// a message that may never come would hold a kernel on the GPU, and a
// device-wide synchronization (freeing pinned memory, NCCL's own abort)
// would wait for it. (A send's kernel waits only until the peer, told by
// the announcement, receives.) The announcements are also the peer's
// lifeline: when the peer's process dies its stream ends, which fails a
// waiting Receive at once. A payload that was announced but does not arrive
// within `payload_timeout` breaks the link. `announcements` may refer to
// `payloads` (to close the pipe when the stream ends, which ends a payload
// wait at once): it is destroyed first.
std::unique_ptr<MessageLink> NewAnnouncedLink(
    std::unique_ptr<MessageLink> announcements,
    std::unique_ptr<PayloadPipe> payloads, absl::Duration payload_timeout);

}  // namespace moe

#endif  // MOE_LINK_ANNOUNCED_LINK_H_

#ifndef MOE_LINK_WORKER_LINK_H_
#define MOE_LINK_WORKER_LINK_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "link/message_link.h"
#include "moe/v1/expert.pb.h"

namespace moe {

// Compute calls to one expert worker as messages on an activation link. The
// worker answers in order, so each reply belongs to the oldest call in
// flight. A link error (the worker lost, a reply overdue) fails every call in
// flight on that link, and the next call opens a new link (a call whose send
// fails on a link that died while idle goes on a new one at once). Errors
// say what happened to the link; the caller names the worker.
class WorkerLink {
 public:
  using Opener = std::function<absl::StatusOr<std::unique_ptr<MessageLink>>()>;

  // A reply not received within `reply_timeout` of its call breaks the link.
  WorkerLink(Opener open, absl::Duration reply_timeout);
  // Closes the link; calls in flight fail with UNAVAILABLE.
  ~WorkerLink();

  // Sends `request` (setting its timeout from `deadline`, which tells the
  // worker when to drop it) and returns; `done` is called once, from another
  // thread (or from this one when the call cannot be sent), with the reply in
  // `response` or an error.
  void Call(v1::LinkRequest& request, absl::Time deadline,
            v1::ComputeResponse* response,
            std::function<void(absl::Status)> done);

  // Links opened so far (1 until a link breaks).
  int64_t links_opened() const;

 private:
  struct InFlight {
    std::shared_ptr<MessageLink> link;  // the link it was sent on
    absl::Time reply_by;
    v1::ComputeResponse* response;
    std::function<void(absl::Status)> done;
  };

  void ReceiveReplies();
  // The reply of `call`, or the error that ends it.
  absl::Status Finish(const InFlight& call,
                      const absl::StatusOr<std::string>& reply) const;
  absl::Status LinkError(const absl::Status& status) const;

  const Opener open_;
  const absl::Duration reply_timeout_;
  mutable std::mutex mutex_;
  std::condition_variable sent_;
  std::shared_ptr<MessageLink> link_;  // null: open one at the next call
  std::deque<InFlight> in_flight_;     // oldest first; only the receiver pops
  int64_t links_opened_ = 0;
  bool stopping_ = false;
  std::thread receiver_;
};

}  // namespace moe

#endif  // MOE_LINK_WORKER_LINK_H_

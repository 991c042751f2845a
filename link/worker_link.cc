#include "link/worker_link.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace moe {

WorkerLink::WorkerLink(Opener open, absl::Duration reply_timeout)
    : open_(std::move(open)), reply_timeout_(reply_timeout) {
  receiver_ = std::thread([this] { ReceiveReplies(); });
}

WorkerLink::~WorkerLink() {
  std::shared_ptr<MessageLink> link;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    link = link_;
  }
  if (link) link->Close();
  sent_.notify_all();
  receiver_.join();
}

int64_t WorkerLink::links_opened() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return links_opened_;
}

absl::Status WorkerLink::LinkError(const absl::Status& status) const {
  if (absl::IsDeadlineExceeded(status)) {
    return absl::DeadlineExceededError(absl::StrCat(
        "no reply within ", absl::ToInt64Milliseconds(reply_timeout_),
        " ms; the activation link was dropped"));
  }
  return absl::UnavailableError(
      absl::StrCat("the activation link broke: ", status.message()));
}

void WorkerLink::Call(v1::LinkRequest& request, absl::Time deadline,
                      v1::ComputeResponse* response,
                      std::function<void(absl::Status)> done) {
  absl::Status failed;
  // Links whose send failed, closed once unlocked: closing an NCCL link
  // aborts its communicators, which may wait for the worker's side.
  std::vector<std::shared_ptr<MessageLink>> broken;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    // A link that died while idle (its worker restarted, say) fails the
    // send, which then goes once more on a new link: nothing was sent.
    for (int attempt = 0; attempt < 2; ++attempt) {
      const bool reused = link_ != nullptr;
      if (!reused) {
        absl::StatusOr<std::unique_ptr<MessageLink>> opened = open_();
        if (!opened.ok()) {
          failed = absl::UnavailableError(
              absl::StrCat("no activation link: ", opened.status().message()));
          break;
        }
        link_ = std::move(*opened);
        ++links_opened_;
      }
      // Timed from here: opening the link may have taken a while.
      const absl::Time now = absl::Now();
      if (deadline != absl::InfiniteFuture()) {
        request.set_timeout_us(
            std::max<int64_t>(1, absl::ToInt64Microseconds(deadline - now)));
      }
      failed = link_->Send(request.SerializeAsString());
      if (failed.ok()) {
        in_flight_.push_back(
            {link_, now + reply_timeout_, response, std::move(done)});
        sent_.notify_all();
        break;
      }
      // The receiver fails the calls already sent when its Receive sees the
      // closed link.
      broken.push_back(std::move(link_));
      link_.reset();
      failed = LinkError(failed);
      if (!reused) break;
    }
  }
  for (const std::shared_ptr<MessageLink>& link : broken) link->Close();
  if (!failed.ok()) done(failed);
}

absl::Status WorkerLink::Finish(
    const InFlight& call, const absl::StatusOr<std::string>& reply) const {
  v1::LinkReply parsed;
  if (!parsed.ParseFromString(*reply)) {
    return absl::InternalError(
        "the worker sent a link frame that is not a LinkReply");
  }
  if (parsed.status_code() != 0) {
    return absl::Status(static_cast<absl::StatusCode>(parsed.status_code()),
                        parsed.status_message());
  }
  call.response->Swap(parsed.mutable_compute());
  return absl::OkStatus();
}

void WorkerLink::ReceiveReplies() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    sent_.wait(lock, [this] { return stopping_ || !in_flight_.empty(); });
    if (in_flight_.empty()) return;  // stopping, nothing owed
    std::shared_ptr<MessageLink> link = in_flight_.front().link;
    const absl::Time reply_by = in_flight_.front().reply_by;
    lock.unlock();
    const absl::StatusOr<std::string> reply = link->Receive(reply_by);
    // Unlocked: an NCCL link's abort may wait for the worker's side.
    if (!reply.ok()) link->Close();
    lock.lock();
    std::vector<InFlight> ended;
    ended.push_back(std::move(in_flight_.front()));
    in_flight_.pop_front();
    absl::Status error;
    if (!reply.ok()) {
      // Every call sent on this link is lost with it.
      error = LinkError(reply.status());
      if (link_ == link) link_.reset();
      while (!in_flight_.empty() && in_flight_.front().link == link) {
        ended.push_back(std::move(in_flight_.front()));
        in_flight_.pop_front();
      }
    }
    lock.unlock();
    for (const InFlight& call : ended) {
      call.done(error.ok() ? Finish(call, reply) : error);
    }
    // The last references may go here, unlocked: a link's destructor joins
    // its threads.
    ended.clear();
    link.reset();
    lock.lock();
  }
}

}  // namespace moe

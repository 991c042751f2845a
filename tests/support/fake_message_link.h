#ifndef MOE_TESTS_SUPPORT_FAKE_MESSAGE_LINK_H_
#define MOE_TESTS_SUPPORT_FAKE_MESSAGE_LINK_H_

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "link/message_link.h"

namespace moe::testing {

// An in-memory link whose far end the test plays: it reads what was sent
// and delivers the peer's messages. A Receive past its deadline breaks it,
// as the real links do.
class FakeLink : public MessageLink {
 public:
  absl::Status Send(std::string_view message) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return absl::UnavailableError("closed");
    sent_.emplace_back(message);
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> Receive(absl::Time deadline) override {
    std::unique_lock<std::mutex> lock(mutex_);
    auto arrived = [this] { return closed_ || !inbox_.empty(); };
    // An infinite deadline as a time point would overflow the wait.
    const bool ready =
        deadline == absl::InfiniteFuture()
            ? (changed_.wait(lock, arrived), true)
            : changed_.wait_until(lock, absl::ToChronoTime(deadline), arrived);
    if (closed_) return absl::UnavailableError("the peer went away");
    if (!ready) {
      closed_ = true;
      return absl::DeadlineExceededError("nothing arrived");
    }
    std::string message = std::move(inbox_.front());
    inbox_.pop_front();
    return message;
  }
  void Close() override {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
    changed_.notify_all();
  }

  // The peer's side.
  void Deliver(std::string message) {
    std::lock_guard<std::mutex> lock(mutex_);
    inbox_.push_back(std::move(message));
    changed_.notify_all();
  }
  std::vector<std::string> Sent() {
    std::lock_guard<std::mutex> lock(mutex_);
    return sent_;
  }
  bool closed() {
    std::lock_guard<std::mutex> lock(mutex_);
    return closed_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> sent_;
  std::deque<std::string> inbox_;
  bool closed_ = false;
};

// A handle on a FakeLink that the test keeps too, for code that owns (and
// drops) its links.
class SharedLink : public MessageLink {
 public:
  explicit SharedLink(std::shared_ptr<FakeLink> link)
      : link_(std::move(link)) {}
  absl::Status Send(std::string_view message) override {
    return link_->Send(message);
  }
  absl::StatusOr<std::string> Receive(absl::Time deadline) override {
    return link_->Receive(deadline);
  }
  void Close() override { link_->Close(); }

 private:
  const std::shared_ptr<FakeLink> link_;
};

}  // namespace moe::testing

#endif  // MOE_TESTS_SUPPORT_FAKE_MESSAGE_LINK_H_

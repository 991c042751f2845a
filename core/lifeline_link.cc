#include "core/lifeline_link.h"

#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"

namespace moe {
namespace {

class LifelineLink : public MessageLink {
 public:
  LifelineLink(std::unique_ptr<MessageLink> link,
               std::unique_ptr<MessageLink> lifeline)
      : link_(std::move(link)), lifeline_(std::move(lifeline)) {
    watcher_ = std::thread([this] { Watch(); });
  }
  ~LifelineLink() override {
    Close();
    watcher_.join();
  }

  absl::Status Send(std::string_view message) override {
    return Explained(link_->Send(message));
  }
  absl::StatusOr<std::string> Receive(absl::Time deadline) override {
    absl::StatusOr<std::string> message = link_->Receive(deadline);
    if (!message.ok()) return Explained(message.status());
    return message;
  }
  void Close() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      closing_ = true;
    }
    lifeline_->Close();
    link_->Close();
  }

 private:
  void Watch() {
    absl::Status ended;
    do {
      // The peer sends nothing on a lifeline; a message is ignored.
      ended = lifeline_->Receive(absl::InfiniteFuture()).status();
    } while (ended.ok());
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (closing_) return;
      lifeline_error_ = ended;
    }
    link_->Close();
  }

  // An error of the link, with the reason when the lifeline broke it.
  absl::Status Explained(absl::Status status) const {
    if (status.ok()) return status;
    std::lock_guard<std::mutex> lock(mutex_);
    if (lifeline_error_.ok()) return status;
    return absl::UnavailableError(absl::StrCat("the peer's lifeline ended (",
                                               lifeline_error_.message(), ")"));
  }

  const std::unique_ptr<MessageLink> link_;
  const std::unique_ptr<MessageLink> lifeline_;
  mutable std::mutex mutex_;
  bool closing_ = false;
  absl::Status lifeline_error_;  // OK while the lifeline lives
  std::thread watcher_;
};

}  // namespace

std::unique_ptr<MessageLink> WithLifeline(
    std::unique_ptr<MessageLink> link, std::unique_ptr<MessageLink> lifeline) {
  return std::make_unique<LifelineLink>(std::move(link), std::move(lifeline));
}

}  // namespace moe

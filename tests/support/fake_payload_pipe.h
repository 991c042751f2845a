#ifndef MOE_TESTS_SUPPORT_FAKE_PAYLOAD_PIPE_H_
#define MOE_TESTS_SUPPORT_FAKE_PAYLOAD_PIPE_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "link/announced_link.h"

namespace moe::testing {

// An in-memory payload pipe whose far end the test plays. As over NCCL, an
// empty payload moves nothing.
class FakePipe {
 public:
  void Deliver(std::string payload) {
    std::lock_guard<std::mutex> lock(mutex_);
    inbox_.push_back(std::move(payload));
    changed_.notify_all();
  }
  std::vector<std::string> Sent() {
    std::lock_guard<std::mutex> lock(mutex_);
    return sent_;
  }
  // The sizes Receive was asked for.
  std::vector<size_t> Asked() {
    std::lock_guard<std::mutex> lock(mutex_);
    return asked_;
  }
  bool closed() {
    std::lock_guard<std::mutex> lock(mutex_);
    return closed_;
  }

  absl::Status Send(std::string_view payload) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return absl::UnavailableError("pipe closed");
    if (!payload.empty()) sent_.emplace_back(payload);
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> Receive(size_t size, absl::Time deadline) {
    std::unique_lock<std::mutex> lock(mutex_);
    asked_.push_back(size);
    if (closed_) return absl::UnavailableError("pipe closed");
    if (size == 0) return std::string();
    const bool ready =
        changed_.wait_until(lock, absl::ToChronoTime(deadline),
                            [this] { return closed_ || !inbox_.empty(); });
    if (closed_) return absl::UnavailableError("pipe closed");
    if (!ready) return absl::DeadlineExceededError("no payload");
    std::string payload = std::move(inbox_.front());
    inbox_.pop_front();
    if (payload.size() != size) return absl::DataLossError("wrong size");
    return payload;
  }
  void Close() {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
    changed_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> sent_;
  std::deque<std::string> inbox_;
  std::vector<size_t> asked_;
  bool closed_ = false;
};

// The link's handle on a FakePipe the test keeps too.
class SharedPipe : public PayloadPipe {
 public:
  explicit SharedPipe(std::shared_ptr<FakePipe> pipe)
      : pipe_(std::move(pipe)) {}
  absl::Status Send(std::string_view payload) override {
    return pipe_->Send(payload);
  }
  absl::StatusOr<std::string> Receive(size_t size,
                                      absl::Time deadline) override {
    return pipe_->Receive(size, deadline);
  }
  void Close() override { pipe_->Close(); }
  // As an NCCL pipe aborts when destroyed.
  ~SharedPipe() override { pipe_->Close(); }

 private:
  const std::shared_ptr<FakePipe> pipe_;
};

// The announcement of `size`: 8 bytes, little-endian, written out here.
inline std::string Announcement(uint64_t size) {
  std::string bytes;
  for (int i = 0; i < 8; ++i)
    bytes.push_back(static_cast<char>(size >> (8 * i)));
  return bytes;
}

}  // namespace moe::testing

#endif  // MOE_TESTS_SUPPORT_FAKE_PAYLOAD_PIPE_H_

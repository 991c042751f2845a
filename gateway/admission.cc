#include "gateway/admission.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace moe {

absl::Status Admission::Admit(const void* owner, std::function<void()> start) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (in_flight_ >= max_in_flight_) {
      if (static_cast<int>(queue_.size()) >= max_queued_) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "the gateway is full: ", in_flight_, " requests running and ",
            queue_.size(), " waiting (--max-in-flight ", max_in_flight_,
            ", --max-queued ", max_queued_, "); retry later"));
      }
      queue_.push_back({owner, std::move(start)});
      return absl::OkStatus();
    }
    ++in_flight_;
  }
  start();
  return absl::OkStatus();
}

bool Admission::Withdraw(const void* owner) {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto it =
      std::find_if(queue_.begin(), queue_.end(),
                   [owner](const Waiting& w) { return w.owner == owner; });
  if (it == queue_.end()) return false;
  queue_.erase(it);
  return true;
}

void Admission::Release() {
  std::function<void()> next;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (queue_.empty()) {
      --in_flight_;
      return;
    }
    // The slot passes on: in_flight_ stays.
    next = std::move(queue_.front().start);
    queue_.pop_front();
  }
  next();
}

int Admission::in_flight() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return in_flight_;
}

int Admission::queued() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int>(queue_.size());
}

}  // namespace moe

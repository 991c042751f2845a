#ifndef MOE_GATEWAY_ADMISSION_H_
#define MOE_GATEWAY_ADMISSION_H_

#include <deque>
#include <functional>
#include <mutex>

#include "absl/status/status.h"

namespace moe {

// Bounds the requests a gateway runs at once and the ones waiting for a
// slot, without blocking a thread: a request is a callback that runs when
// it gets a slot, either at once in Admit or later in the Release of the
// request it replaces. Beyond both limits Admit fails at once, so callers
// hear "full" instead of waiting without end. Thread-safe.
class Admission {
 public:
  Admission(int max_in_flight, int max_queued)
      : max_in_flight_(max_in_flight), max_queued_(max_queued) {}

  // Runs `start` now (on this thread, after Admit's lock is released) or
  // when a slot frees up; RESOURCE_EXHAUSTED when the queue is full too.
  // `owner` names the request for Withdraw.
  absl::Status Admit(const void* owner, std::function<void()> start);
  // Takes `owner`'s request out of the queue; false when it is not queued
  // (it has started, or is starting), so its slot must be released as usual.
  bool Withdraw(const void* owner);
  // Ends a running request: its slot goes to the oldest waiting one.
  void Release();

  int in_flight() const;
  int queued() const;

 private:
  struct Waiting {
    const void* owner;
    std::function<void()> start;
  };

  const int max_in_flight_;
  const int max_queued_;
  mutable std::mutex mutex_;
  int in_flight_ = 0;
  std::deque<Waiting> queue_;
};

}  // namespace moe

#endif  // MOE_GATEWAY_ADMISSION_H_

#ifndef MOE_ROUTER_SERVICE_LOAD_WINDOW_H_
#define MOE_ROUTER_SERVICE_LOAD_WINDOW_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"

namespace moe {

// Counters that only grow: the routed tokens per (layer, expert) and, per
// expert worker, its calls, rows and the time they took.
struct LoadCounts {
  std::vector<int64_t> routed_tokens;  // [layers x experts]
  struct Worker {
    std::string id;
    int64_t calls = 0;
    int64_t rows = 0;
    double compute_seconds = 0;  // as the worker reports it
    double queue_seconds = 0;    // waiting in the worker's queue
    double round_trip_seconds = 0;
  };
  std::vector<Worker> workers;
};

// The load of the last minutes as differences of samples: Add the counters
// every second or so; Over(window) is the newest sample less the newest one
// at least `window` older (or the oldest kept). Samples older than `keep`
// go. Thread-safe.
class LoadWindow {
 public:
  explicit LoadWindow(absl::Duration keep) : keep_(keep) {}

  void Add(absl::Time time, LoadCounts counts);

  struct Load {
    absl::Duration span;  // between the two samples; 0 with fewer than two
    LoadCounts counts;    // within the span; a new worker counts from zero
  };
  Load Over(absl::Duration window) const;

 private:
  struct Sample {
    absl::Time time;
    LoadCounts counts;
  };

  const absl::Duration keep_;
  mutable std::mutex mutex_;
  std::deque<Sample> samples_;  // oldest first
};

// Adds source() to a LoadWindow every `interval` on a thread of its own,
// from construction until destruction.
class LoadRecorder {
 public:
  LoadRecorder(LoadWindow& window, std::function<LoadCounts()> source,
               absl::Duration interval);
  ~LoadRecorder();

  LoadRecorder(const LoadRecorder&) = delete;
  LoadRecorder& operator=(const LoadRecorder&) = delete;

 private:
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;  // guarded by mutex_
  std::thread thread_;
};

}  // namespace moe

#endif  // MOE_ROUTER_SERVICE_LOAD_WINDOW_H_

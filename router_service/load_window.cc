#include "router_service/load_window.h"

#include <algorithm>

#include "absl/time/clock.h"

namespace moe {

void LoadWindow::Add(absl::Time time, LoadCounts counts) {
  std::lock_guard<std::mutex> lock(mutex_);
  samples_.push_back({time, std::move(counts)});
  // Keep one sample at or before the cutoff, so a window of `keep` is whole.
  while (samples_.size() > 2 && samples_[1].time <= time - keep_) {
    samples_.pop_front();
  }
}

LoadWindow::Load LoadWindow::Over(absl::Duration window) const {
  std::lock_guard<std::mutex> lock(mutex_);
  Load load{absl::ZeroDuration(), {}};
  if (samples_.size() < 2) return load;
  const Sample& newest = samples_.back();
  // The newest sample at least `window` before the newest, else the oldest.
  const Sample* start = &samples_.front();
  for (const Sample& sample : samples_) {
    if (sample.time > newest.time - window) break;
    start = &sample;
  }
  load.span = newest.time - start->time;
  std::vector<int64_t>& routed = load.counts.routed_tokens;
  routed = newest.counts.routed_tokens;
  const std::vector<int64_t>& before = start->counts.routed_tokens;
  for (size_t i = 0; i < std::min(routed.size(), before.size()); ++i) {
    routed[i] -= before[i];
  }
  for (const LoadCounts::Worker& now : newest.counts.workers) {
    LoadCounts::Worker worker = now;
    for (const LoadCounts::Worker& then : start->counts.workers) {
      if (then.id != now.id) continue;
      worker.calls -= then.calls;
      worker.rows -= then.rows;
      worker.compute_seconds -= then.compute_seconds;
      worker.queue_seconds -= then.queue_seconds;
      worker.round_trip_seconds -= then.round_trip_seconds;
    }
    load.counts.workers.push_back(worker);
  }
  return load;
}

LoadRecorder::LoadRecorder(LoadWindow& window,
                           std::function<LoadCounts()> source,
                           absl::Duration interval) {
  thread_ = std::thread([this, &window, source = std::move(source), interval] {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopping_) {
      lock.unlock();
      window.Add(absl::Now(), source());
      lock.lock();
      wake_.wait_for(lock, absl::ToChronoMilliseconds(interval),
                     [this] { return stopping_; });
    }
  });
}

LoadRecorder::~LoadRecorder() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

}  // namespace moe

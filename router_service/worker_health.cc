#include "router_service/worker_health.h"

#include <algorithm>
#include <iostream>

#include "absl/time/clock.h"

namespace moe {

WorkerHealth::WorkerHealth(absl::Duration probe_interval)
    : probe_interval_(probe_interval) {
  prober_ = std::thread([this] { ProbeLoop(); });
}

WorkerHealth::~WorkerHealth() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  prober_.join();
}

std::shared_ptr<WorkerHealth::Watched> WorkerHealth::Watch(
    std::string name, std::function<absl::Status()> probe) {
  auto watched =
      std::shared_ptr<Watched>(new Watched(std::move(name), std::move(probe)));
  std::lock_guard<std::mutex> lock(mutex_);
  watched_.push_back(watched);
  return watched;
}

void WorkerHealth::Forget(const Watched& watched) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::erase_if(watched_, [&watched](const std::shared_ptr<Watched>& w) {
    return w.get() == &watched;
  });
}

void WorkerHealth::MarkDown(Watched& watched, const absl::Status& why) {
  if (!watched.up_.exchange(false, std::memory_order_acq_rel)) return;
  std::cerr << "moe-router: " << watched.name_ << " is down (" << why.message()
            << "); its rows go to other holders of its experts until it "
               "answers again"
            << std::endl;
  wake_.notify_all();
}

void WorkerHealth::ProbeLoop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (int round = 1; !stopping_; ++round) {
    wake_.wait_for(lock, absl::ToChronoMilliseconds(probe_interval_));
    const bool probe_up = round % kUpProbeRounds == 0;
    // A copy: workers may join or be forgotten while the lock is released.
    const std::vector<std::shared_ptr<Watched>> watched = watched_;
    for (const std::shared_ptr<Watched>& w : watched) {
      if (stopping_) break;
      const bool up = w->up();
      if (up && !probe_up) continue;
      // The probe is an RPC: not under the lock, which MarkDown's callers
      // never wait for but the destructor does.
      lock.unlock();
      const absl::Status probed = w->probe_();
      if (up && !probed.ok()) MarkDown(*w, probed);
      lock.lock();
      if (up || !probed.ok()) continue;
      w->up_.store(true, std::memory_order_release);
      w->recoveries_.fetch_add(1, std::memory_order_relaxed);
      std::cerr << "moe-router: " << w->name_ << " is back" << std::endl;
    }
  }
}

}  // namespace moe

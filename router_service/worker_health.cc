#include "router_service/worker_health.h"

#include <iostream>

#include "absl/time/clock.h"

namespace moe {

WorkerHealth::WorkerHealth(std::vector<std::string> names,
                           std::function<absl::Status(int)> probe,
                           absl::Duration probe_interval)
    : names_(std::move(names)),
      probe_(std::move(probe)),
      probe_interval_(probe_interval),
      up_(new std::atomic<bool>[names_.size()]),
      recoveries_(new std::atomic<int64_t>[names_.size()]) {
  for (size_t w = 0; w < names_.size(); ++w) {
    up_[w].store(true);
    recoveries_[w].store(0);
  }
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

void WorkerHealth::MarkDown(int worker, const absl::Status& why) {
  if (!up_[worker].exchange(false, std::memory_order_acq_rel)) return;
  std::cerr << "moe-router: " << names_[worker] << " is down (" << why.message()
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
    for (size_t w = 0; w < names_.size() && !stopping_; ++w) {
      const bool up = up_[w].load(std::memory_order_acquire);
      if (up && !probe_up) continue;
      // The probe is an RPC: not under the lock, which MarkDown's callers
      // never wait for but the destructor does.
      lock.unlock();
      const absl::Status probed = probe_(static_cast<int>(w));
      if (up && !probed.ok()) MarkDown(static_cast<int>(w), probed);
      lock.lock();
      if (up || !probed.ok()) continue;
      up_[w].store(true, std::memory_order_release);
      recoveries_[w].fetch_add(1, std::memory_order_relaxed);
      std::cerr << "moe-router: " << names_[w] << " is back" << std::endl;
    }
  }
}

}  // namespace moe

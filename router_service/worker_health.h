#ifndef MOE_ROUTER_SERVICE_WORKER_HEALTH_H_
#define MOE_ROUTER_SERVICE_WORKER_HEALTH_H_

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace moe {

// Which expert workers the router may send rows to. A worker is up until a
// call to it fails or a probe finds it not serving; then it is down, and a
// prober thread asks it again every `probe_interval` (its probe: OK once it
// serves again) until it is back. Workers that are up are probed every
// kUpProbeRounds intervals, so one that died while idle is noticed too.
// Workers are watched from when they join until they are forgotten.
// Transitions are logged to stderr with the worker's name.
class WorkerHealth {
 public:
  static constexpr int kUpProbeRounds = 5;

  // One watched worker.
  class Watched {
   public:
    bool up() const { return up_.load(std::memory_order_acquire); }
    // Times it came back after being down.
    int64_t recoveries() const {
      return recoveries_.load(std::memory_order_relaxed);
    }

   private:
    friend class WorkerHealth;
    Watched(std::string name, std::function<absl::Status()> probe)
        : name_(std::move(name)), probe_(std::move(probe)) {}

    const std::string name_;
    const std::function<absl::Status()> probe_;
    std::atomic<bool> up_{true};
    std::atomic<int64_t> recoveries_{0};
  };

  explicit WorkerHealth(absl::Duration probe_interval);
  ~WorkerHealth();  // stops the prober, waiting for a probe in flight

  WorkerHealth(const WorkerHealth&) = delete;
  WorkerHealth& operator=(const WorkerHealth&) = delete;

  // Watches a worker, up to begin with. probe(): OK when it answers and
  // serves what the router expects of it; called on the prober thread.
  std::shared_ptr<Watched> Watch(std::string name,
                                 std::function<absl::Status()> probe);
  // Stops probing it (a probe in flight finishes).
  void Forget(const Watched& watched);
  // Marks the worker down, saying why, unless it already is.
  void MarkDown(Watched& watched, const absl::Status& why);

 private:
  void ProbeLoop();

  const absl::Duration probe_interval_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;                          // guarded by mutex_
  std::vector<std::shared_ptr<Watched>> watched_;  // guarded by mutex_
  std::thread prober_;
};

}  // namespace moe

#endif  // MOE_ROUTER_SERVICE_WORKER_HEALTH_H_

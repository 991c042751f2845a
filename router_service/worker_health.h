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
// prober thread asks it again every `probe_interval` (`probe`: OK once it
// serves the plan again) until it is back. Workers that are up are probed
// every kUpProbeRounds intervals, so one that died while idle is noticed
// too. Transitions are logged to stderr with the worker's name.
class WorkerHealth {
 public:
  static constexpr int kUpProbeRounds = 5;

  // probe(worker): OK when the worker answers and serves what the router
  // expects of it.
  WorkerHealth(std::vector<std::string> names,
               std::function<absl::Status(int worker)> probe,
               absl::Duration probe_interval);
  ~WorkerHealth();  // stops the prober, waiting for a probe in flight

  WorkerHealth(const WorkerHealth&) = delete;
  WorkerHealth& operator=(const WorkerHealth&) = delete;

  bool up(int worker) const {
    return up_[worker].load(std::memory_order_acquire);
  }
  // Marks the worker down, saying why, unless it already is.
  void MarkDown(int worker, const absl::Status& why);
  // Times the worker came back after being down.
  int64_t recoveries(int worker) const {
    return recoveries_[worker].load(std::memory_order_relaxed);
  }

 private:
  void ProbeLoop();

  const std::vector<std::string> names_;
  const std::function<absl::Status(int)> probe_;
  const absl::Duration probe_interval_;
  std::unique_ptr<std::atomic<bool>[]> up_;
  std::unique_ptr<std::atomic<int64_t>[]> recoveries_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;  // guarded by mutex_
  std::thread prober_;
};

}  // namespace moe

#endif  // MOE_ROUTER_SERVICE_WORKER_HEALTH_H_

#ifndef MOE_CORE_UTIL_THREAD_POOL_H_
#define MOE_CORE_UTIL_THREAD_POOL_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace moe {

// A fixed set of threads for data-parallel loops. The calling thread takes a
// share of every loop itself. A decode step runs a few dozen short loops
// (tens to hundreds of microseconds each), so workers spin for a moment
// before sleeping: waking a sleeping thread costs about as much as a loop.
class ThreadPool {
 public:
  // `num_threads` counts the caller; 0 means one per CPU this process may
  // run on.
  explicit ThreadPool(int num_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(begin, end) over disjoint ranges covering [0, count), split in
  // at most num_threads() contiguous pieces, and returns when all are done.
  // Not reentrant: one loop at a time per pool.
  void ParallelFor(int64_t count,
                   const std::function<void(int64_t, int64_t)>& fn);

 private:
  void WorkerLoop(int index);
  void RunShare(int index);
  // Waits for a generation other than `seen`; false when stopping.
  bool AwaitWork(uint64_t seen, uint64_t* generation);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  // The current loop, published by the release increment of generation_.
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t count_ = 0;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};   // workers still running the current loop
  std::atomic<int> sleepers_{0};  // workers blocked on wake_
  std::atomic<bool> stopping_{false};
};

}  // namespace moe

#endif  // MOE_CORE_UTIL_THREAD_POOL_H_

#include "core/util/thread_pool.h"

#include <immintrin.h>
#include <sched.h>

#include <algorithm>

namespace moe {
namespace {

// About 100 us of pause instructions: longer than the gap between the loops
// of one decode step, short enough not to burn a core when idle.
constexpr int kSpinsBeforeSleep = 2000;

// CPUs this process may run on (taskset, cpusets), which may be fewer than
// the machine has; every loop waits for all workers, so extra threads would
// only take turns.
int UsableCpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    return std::max(1, CPU_COUNT(&set));
  }
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) num_threads = UsableCpus();
  for (int i = 1; i < num_threads; ++i) {
    workers_.emplace_back([this, i] { WorkerLoop(i); });
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_.store(true);
  }
  wake_.notify_all();
  for (std::thread& worker : workers_) worker.join();
}

void ThreadPool::RunShare(int index) {
  const int64_t parts = num_threads();
  const int64_t begin = count_ * index / parts;
  const int64_t end = count_ * (index + 1) / parts;
  if (begin < end) (*fn_)(begin, end);
}

void ThreadPool::ParallelFor(int64_t count,
                             const std::function<void(int64_t, int64_t)>& fn) {
  if (count <= 0) return;
  if (workers_.empty() || count == 1) {
    fn(0, count);
    return;
  }
  fn_ = &fn;
  count_ = count;
  pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
  {
    // Under the mutex, so a worker deciding to sleep sees either the new
    // generation or is counted in sleepers_ before it is read below.
    std::lock_guard<std::mutex> lock(mutex_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  if (sleepers_.load() > 0) wake_.notify_all();
  RunShare(0);
  for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
    if (spins < kSpinsBeforeSleep) {
      _mm_pause();
    } else {
      std::this_thread::yield();
    }
  }
}

bool ThreadPool::AwaitWork(uint64_t seen, uint64_t* generation) {
  for (int spins = 0; spins < kSpinsBeforeSleep; ++spins) {
    *generation = generation_.load(std::memory_order_acquire);
    if (*generation != seen) return true;
    if (stopping_.load(std::memory_order_relaxed)) return false;
    _mm_pause();
  }
  std::unique_lock<std::mutex> lock(mutex_);
  sleepers_.fetch_add(1);
  wake_.wait(lock, [&] {
    return stopping_.load() ||
           generation_.load(std::memory_order_acquire) != seen;
  });
  sleepers_.fetch_sub(1);
  *generation = generation_.load(std::memory_order_acquire);
  return !stopping_.load();
}

void ThreadPool::WorkerLoop(int index) {
  uint64_t seen = 0;
  while (AwaitWork(seen, &seen)) {
    RunShare(index);
    pending_.fetch_sub(1, std::memory_order_release);
  }
}

}  // namespace moe

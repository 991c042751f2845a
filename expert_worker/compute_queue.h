#ifndef MOE_EXPERT_WORKER_COMPUTE_QUEUE_H_
#define MOE_EXPERT_WORKER_COMPUTE_QUEUE_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "core/kernels/expert_ffn.h"
#include "expert_worker/expert_store.h"

namespace moe {

// How a finished call was computed.
struct ComputeStats {
  int64_t queue_wait_us = 0;
  int64_t compute_us = 0;
  int batched_calls = 0;  // calls computed in the same pass
};

// One Compute call: rows [n, hidden] and their assignments (rows index into
// this call's rows).
struct ComputeTask {
  int layer = 0;
  int64_t n = 0;
  std::vector<float> rows;
  std::vector<ExpertAssignment> assignments;
  // True once nobody waits for the result (the call was cancelled or its
  // deadline passed): the task is dropped instead of computed.
  std::function<bool()> abandoned;
  // Called exactly once, from the compute thread (or from the destructor
  // with UNAVAILABLE): the output [n, hidden] or an error.
  std::function<void(absl::Status, std::vector<float>, ComputeStats)> done;
};

// One pass of the compute: the calls of a layer merged into one batch.
struct LayerRun {
  int layer = 0;
  int64_t rows = 0;
  // The batch's assignments (rows index into the merged batch).
  const std::vector<ExpertAssignment>* assignments = nullptr;
  int64_t compute_us = 0;
  std::vector<int64_t> queue_wait_us;  // per call
};

// A bounded queue in front of the expert compute. One thread drains it: all
// calls waiting for the same layer are merged into one batch, so rows from
// different calls (micro-batches, routers) that need the same expert are
// computed together and its weights are read once.
class ComputeQueue {
 public:
  // Computes with the store's ExpertCompute; `observer` (may be null) is
  // called on the compute thread after every pass that computed.
  ComputeQueue(const ExpertStore& store, int capacity,
               std::function<void(const LayerRun&)> observer = nullptr);
  ~ComputeQueue();

  const ExpertStore& store() const { return store_; }
  int capacity() const { return capacity_; }
  // Calls waiting now.
  int depth() const;

  // RESOURCE_EXHAUSTED (and `task.done` not called) when `capacity` calls
  // are already waiting.
  absl::Status Submit(ComputeTask task);

 private:
  struct Queued {
    ComputeTask task;
    int64_t enqueued_us;
  };
  void Loop();
  void RunLayer(std::vector<Queued>& calls);

  const ExpertStore& store_;
  const int capacity_;
  const std::function<void(const LayerRun&)> observer_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Queued> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace moe

#endif  // MOE_EXPERT_WORKER_COMPUTE_QUEUE_H_

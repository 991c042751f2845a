#include "expert_worker/compute_queue.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace moe {
namespace {

int64_t NowUs() { return absl::ToUnixMicros(absl::Now()); }

// The worker may have unloaded an expert since the call was accepted: each
// call is checked against the set it will run on, so one bad call does not
// fail the calls batched with it.
absl::Status CheckHeld(const ModelWeights& weights, const ComputeTask& task) {
  const LayerWeights& layer = weights.layers()[task.layer];
  for (const ExpertAssignment& a : task.assignments) {
    if (!layer.experts[a.expert].loaded) {
      return absl::FailedPreconditionError(
          absl::StrCat("expert ", a.expert, " of layer ", task.layer,
                       " is not held by this worker"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

ComputeQueue::ComputeQueue(const ExpertStore& store, int capacity,
                           std::function<void(const LayerRun&)> observer)
    : store_(store), capacity_(capacity), observer_(std::move(observer)) {
  thread_ = std::thread([this] { Loop(); });
}

ComputeQueue::~ComputeQueue() {
  std::deque<Queued> left;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    left.swap(queue_);
  }
  wake_.notify_all();
  thread_.join();
  for (Queued& q : left) {
    q.task.done(absl::UnavailableError("the expert worker is shutting down"),
                {}, {});
  }
}

absl::Status ComputeQueue::Submit(ComputeTask task) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) {
      return absl::UnavailableError("the expert worker is shutting down");
    }
    if (static_cast<int>(queue_.size()) >= capacity_) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the expert worker's queue is full (", capacity_, " calls)"));
    }
    queue_.push_back({std::move(task), NowUs()});
  }
  wake_.notify_one();
  return absl::OkStatus();
}

int ComputeQueue::depth() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int>(queue_.size());
}

void ComputeQueue::Loop() {
  while (true) {
    std::vector<Queued> calls;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      // Everything waiting for the layer at the head of the queue.
      const int layer = queue_.front().task.layer;
      for (auto it = queue_.begin(); it != queue_.end();) {
        if (it->task.layer == layer) {
          calls.push_back(std::move(*it));
          it = queue_.erase(it);
        } else {
          ++it;
        }
      }
    }
    RunLayer(calls);
  }
}

void ComputeQueue::RunLayer(std::vector<Queued>& calls) {
  const std::shared_ptr<const ModelWeights> weights = store_.Current();
  const int64_t hidden = store_.config().hidden_size;
  const int64_t start_us = NowUs();
  // Merge the live calls into one batch; their rows follow each other.
  std::vector<Queued*> merged;
  std::vector<int64_t> first_row;
  int64_t rows = 0;
  for (Queued& call : calls) {
    if (call.task.abandoned && call.task.abandoned()) {
      call.task.done(absl::CancelledError("the call was abandoned"), {}, {});
      continue;
    }
    if (absl::Status held = CheckHeld(*weights, call.task); !held.ok()) {
      call.task.done(held, {}, {});
      continue;
    }
    merged.push_back(&call);
    first_row.push_back(rows);
    rows += call.task.n;
  }
  if (merged.empty()) return;
  std::vector<float> x(rows * hidden);
  std::vector<ExpertAssignment> assignments;
  for (size_t i = 0; i < merged.size(); ++i) {
    const ComputeTask& task = merged[i]->task;
    std::copy(task.rows.begin(), task.rows.end(),
              x.begin() + first_row[i] * hidden);
    for (ExpertAssignment a : task.assignments) {
      a.row += static_cast<int32_t>(first_row[i]);
      assignments.push_back(a);
    }
  }
  std::vector<float> out(rows * hidden);
  const int layer = merged[0]->task.layer;
  const absl::Status status = store_.compute().Compute(
      *weights, layer, x.data(), rows, assignments, out.data());
  const int64_t end_us = NowUs();
  if (observer_ && status.ok()) {
    LayerRun run{layer, rows, &assignments, end_us - start_us, {}};
    for (const Queued* call : merged) {
      run.queue_wait_us.push_back(start_us - call->enqueued_us);
    }
    observer_(run);
  }
  for (size_t i = 0; i < merged.size(); ++i) {
    ComputeTask& task = merged[i]->task;
    ComputeStats stats{start_us - merged[i]->enqueued_us, end_us - start_us,
                       static_cast<int>(merged.size())};
    if (!status.ok()) {
      task.done(status, {}, stats);
      continue;
    }
    const auto begin = out.begin() + first_row[i] * hidden;
    task.done(absl::OkStatus(),
              std::vector<float>(begin, begin + task.n * hidden), stats);
  }
}

}  // namespace moe

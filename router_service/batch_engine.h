#ifndef MOE_ROUTER_SERVICE_BATCH_ENGINE_H_
#define MOE_ROUTER_SERVICE_BATCH_ENGINE_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "router_service/generation.h"
#include "router_service/model_runner.h"

namespace moe {

struct EngineRequest {
  std::string id;  // unique among live requests
  GenerationRequest generation;
  absl::Time deadline = absl::InfiniteFuture();
  // Called on the engine thread with each new token; must not block.
  std::function<void(int32_t token)> on_token;
  // Called exactly once: how the request ended, or its error (INVALID_ARGUMENT,
  // CANCELLED, DEADLINE_EXCEEDED, or a failed expert worker's status).
  std::function<void(absl::StatusOr<FinishReason>)> on_finish;
};

struct EngineOptions {
  int max_batch = 16;   // sequences in one step
  int max_queue = 256;  // accepted requests waiting to join the batch
  // Positions all KV caches may hold together. A request reserves its prompt
  // plus max_tokens when it joins the batch.
  int64_t kv_token_capacity = int64_t{1} << 20;
};

struct EngineStatus {
  int queued = 0;
  int running = 0;
  int64_t kv_tokens_used = 0;
  int64_t steps = 0;
  int64_t generated_tokens = 0;
  std::vector<int64_t> routed_counts;  // [layers x experts]
};

// Runs many requests as one batch, one engine step at a time: each step
// every running sequence advances by one token (a newly joined one by its
// whole prompt), all through one batched forward pass, so each layer's
// experts are dispatched once per step for everybody. Requests join and
// leave between steps. One thread runs the steps.
class BatchEngine {
 public:
  BatchEngine(ModelRunner& runner, const EngineOptions& options);
  // Ends what is left with UNAVAILABLE.
  ~BatchEngine();

  // INVALID_ARGUMENT naming the field, ALREADY_EXISTS for a live id,
  // RESOURCE_EXHAUSTED when the queue is full. On error no callback runs.
  absl::Status Submit(EngineRequest request);
  // The request ends with CANCELLED before its next step; NOT_FOUND when no
  // live request has this id.
  absl::Status Cancel(const std::string& id);

  EngineStatus Status() const;
  const EngineOptions& options() const { return options_; }

 private:
  struct Sequence;
  void Loop();
  // Removes cancelled and expired sequences and admits queued ones; returns
  // the sequences that ended.
  std::vector<std::unique_ptr<Sequence>> UpdateBatch();
  // One step for every running sequence; returns those that ended.
  std::vector<std::unique_ptr<Sequence>> Step();
  // Copies the batch's numbers into status_ (mutex_ held).
  void PublishStatus();

  ModelRunner& runner_;
  const EngineOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::deque<std::unique_ptr<Sequence>> queue_;
  std::map<std::string, Sequence*> live_;  // queued or running, by id
  int64_t kv_reserved_ = 0;
  EngineStatus status_;
  // Touched by the engine thread only.
  std::vector<std::unique_ptr<Sequence>> running_;
  std::thread thread_;
};

}  // namespace moe

#endif  // MOE_ROUTER_SERVICE_BATCH_ENGINE_H_

#ifndef MOE_ROUTER_SERVICE_BATCH_ENGINE_H_
#define MOE_ROUTER_SERVICE_BATCH_ENGINE_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/generation.h"
#include "engine/model_runner.h"

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

// One engine step, as its observer sees it.
struct StepRecord {
  absl::Duration time;  // the forward pass and sampling
  int sequences = 0;    // in the step's batch
  int64_t tokens = 0;   // context tokens it ran (decode and prompt chunks)
};

struct EngineOptions {
  int max_batch = 16;   // sequences running at once
  int max_queue = 256;  // accepted requests waiting to join the batch
  // Tokens one step computes at most: every decoding sequence's next token
  // first, then chunks of prompts with what is left, so a long prompt is
  // spread over several steps instead of stalling everyone's decode. At
  // least max_batch.
  int max_step_tokens = 512;
  // Called on the engine thread after every step (may be null).
  std::function<void(const StepRecord&)> on_step;
};

struct EngineStatus {
  int queued = 0;
  int running = 0;
  int64_t kv_tokens_used = 0;  // positions held by running sequences
  int64_t kv_blocks_free = 0;
  int64_t kv_blocks_total = 0;
  int64_t steps = 0;
  int64_t generated_tokens = 0;
  int64_t prefill_tokens = 0;  // prompt (and recomputed) tokens run
  // Sequences sent back to the queue because the KV cache ran out of blocks.
  int64_t preemptions = 0;
  RunnerCounters runner;
  std::vector<int64_t> routed_counts;  // [layers x experts]
};

// Continuous batching over a paged KV cache, one engine step at a time.
// Requests join and leave the running batch between steps. Each step runs
// one batched forward pass with every decoding sequence's next token and,
// within a token budget, chunks of the prompts still being read (chunked
// prefill), so each layer's experts are dispatched once per step for
// everybody. A request joins when its prompt's KV blocks are free; when a
// decoding sequence needs a block and none is free, the newest running
// sequence is preempted: its blocks are freed and it goes back to the head
// of the queue, to recompute its context when it rejoins. One thread runs
// the steps.
class BatchEngine {
 public:
  BatchEngine(ModelRunner& runner, const EngineOptions& options);
  // Ends what is left with UNAVAILABLE.
  ~BatchEngine();

  // INVALID_ARGUMENT naming the field (also when the prompt and max_tokens
  // could never fit the KV cache), ALREADY_EXISTS for a live id,
  // RESOURCE_EXHAUSTED when the queue is full. On error no callback runs.
  absl::Status Submit(EngineRequest request);
  // The request ends with CANCELLED before its next step; NOT_FOUND when no
  // live request has this id.
  absl::Status Cancel(const std::string& id);

  // Runs `task` on the engine thread between two steps (at once when none
  // is running) and returns once it ran; UNAVAILABLE when the engine stops
  // first. What a step reads stays as it was for the whole step. Not from
  // the engine's callbacks: it would wait for itself.
  absl::Status RunBetweenSteps(std::function<void()> task);

  EngineStatus Status() const;
  const EngineOptions& options() const { return options_; }
  int kv_block_size() const { return runner_.kv_pool().block_size(); }

 private:
  struct Sequence;
  // A sequence's share of the next step: `count` tokens of its context from
  // its cache's length on.
  struct Chunk {
    Sequence* sequence;
    int64_t count;
  };
  void Loop();
  // Runs the tasks queued by RunBetweenSteps.
  void RunTasksBetweenSteps();
  // Removes cancelled and expired sequences and admits queued ones while
  // their blocks are free; returns the sequences that ended.
  std::vector<std::unique_ptr<Sequence>> UpdateBatch();
  // What the next step runs, oldest sequences first, taking the blocks it
  // needs (and preempting for them).
  std::vector<Chunk> PlanStep();
  // Frees the newest running sequence's blocks and queues it again.
  void PreemptNewest();
  // Runs the planned chunks; returns the sequences that ended.
  std::vector<std::unique_ptr<Sequence>> Step(const std::vector<Chunk>& plan);
  // Copies the batch's numbers into status_ (mutex_ held).
  void PublishStatus();

  ModelRunner& runner_;
  const EngineOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::deque<std::unique_ptr<Sequence>> queue_;
  std::map<std::string, Sequence*> live_;  // queued or running, by id
  // RunBetweenSteps's tasks, each with whether it ran.
  std::deque<std::pair<std::function<void()>, std::promise<bool>>>
      between_steps_;
  int64_t next_arrival_ = 0;
  EngineStatus status_;
  // Touched by the engine thread only: in order of arrival.
  std::vector<std::unique_ptr<Sequence>> running_;
  std::thread thread_;
};

}  // namespace moe

#endif  // MOE_ROUTER_SERVICE_BATCH_ENGINE_H_

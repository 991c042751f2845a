#ifndef MOE_ENGINE_MODEL_RUNNER_H_
#define MOE_ENGINE_MODEL_RUNNER_H_

#include <chrono>
#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/model/model_config.h"
#include "engine/kv_block_pool.h"
#include "engine/kv_cache.h"

namespace moe {

// Which rows of a step get logits: none (a prompt chunk that does not end
// the prompt), the last, or all (teacher forcing).
enum class LogitsFor { kNone, kLastToken, kAllTokens };

struct ModelRunnerOptions {
  KvCacheOptions kv_cache;
  // A batch of several sequences is split into this many micro-batches (1
  // or 2) that take turns: while one's rows are at the expert workers, the
  // other's attention runs. Useful only when the experts run elsewhere.
  int micro_batches = 1;
  // The most rows one pass runs (the engine's --max-step-tokens): the GPU
  // runner checks at start that their scratch fits beside the weights and
  // the KV cache.
  int max_step_tokens = 512;
};

// Where the router's time went, summed over forward passes.
struct RunnerCounters {
  int64_t forward_passes = 0;
  int64_t split_passes = 0;  // passes run as two micro-batches
  // Norms, attention, projections and gate of every layer.
  double attention_us = 0;
  // The part of attention_us that ran while the other micro-batch's rows
  // were at the experts: the overlap.
  double overlapped_attention_us = 0;
  // Blocked waiting for expert results.
  double expert_wait_us = 0;
};

// One sequence's share of a batched forward pass: `tokens` continue the
// sequence held in `cache`.
struct SequenceStep {
  std::span<const int32_t> tokens;
  SequenceKvCache* cache = nullptr;
  LogitsFor logits_for = LogitsFor::kLastToken;
  // When the sequence's request stops waiting (passed to remote experts).
  absl::Time deadline = absl::InfiniteFuture();
};

// The forward pass of the MoE transformer over a batch of sequences, as the
// engine drives it: on the CPU (CpuModelRunner) or the router's GPU
// (GpuModelRunner). Prefill and decode are the same call: each step's tokens
// continue the sequence held in its cache, whose blocks come from kv_pool().
class ModelRunner {
 public:
  virtual ~ModelRunner() = default;

  const ModelConfig& config() const { return config_; }

  // The KV cache's blocks, shared by every sequence of this runner.
  KvBlockPool& kv_pool() { return kv_pool_; }
  // An empty cache that takes its blocks from kv_pool().
  SequenceKvCache NewCache() { return SequenceKvCache(kv_pool_); }

  // Runs `tokens` at positions [cache.length(), cache.length() + n) and
  // extends the cache (taking blocks from the pool as needed). Returns
  // logits [0, 1 or n, vocab]. On error the cache holds the positions it
  // held (RESOURCE_EXHAUSTED when the pool lacks blocks).
  absl::StatusOr<std::vector<float>> Forward(std::span<const int32_t> tokens,
                                             SequenceKvCache& cache,
                                             LogitsFor which);

  // Runs every step as one batch. Each step gets its own result: logits [1
  // or n, vocab], or an error (bad tokens, context overflow, or an expert
  // worker its rows needed failed) that leaves its cache as it was and does
  // not affect the other steps.
  virtual std::vector<absl::StatusOr<std::vector<float>>> ForwardBatch(
      std::span<const SequenceStep> steps) = 0;

  // Rows routed to each (layer, expert) since construction, [layers x experts].
  const std::vector<int64_t>& routed_counts() const { return routed_counts_; }
  const RunnerCounters& counters() const { return counters_; }

 protected:
  // A KV cache of options.kv_cache's size for `config` (which must outlive
  // the runner), its keys and values held as `kv_storage` says.
  ModelRunner(const ModelConfig& config, const ModelRunnerOptions& options,
              KvStorage kv_storage);

  // Microseconds since `start`, for the counters.
  static double MicrosSince(std::chrono::steady_clock::time_point start);

  const ModelRunnerOptions& options() const { return options_; }
  std::vector<int64_t>& mutable_routed_counts() { return routed_counts_; }
  RunnerCounters& mutable_counters() { return counters_; }

  // Checks every step's tokens and context length against the model and
  // reserves the cache blocks its positions need; a step that fails gets
  // its error in `results`. Divides the others into at most
  // options().micro_batches micro-batches of about equal rows, none empty,
  // in order: indices into `steps`.
  std::vector<std::vector<size_t>> CheckAndSplit(
      std::span<const SequenceStep> steps,
      std::vector<absl::StatusOr<std::vector<float>>>& results) const;

 private:
  absl::Status CheckStep(const SequenceStep& step) const;

  const ModelConfig& config_;
  const ModelRunnerOptions options_;
  KvBlockPool kv_pool_;
  std::vector<int64_t> routed_counts_;
  RunnerCounters counters_;
};

}  // namespace moe

#endif  // MOE_ENGINE_MODEL_RUNNER_H_

// The scheduler of the batching engine: continuous batching with chunked
// prefill over a paged KV cache, preemption when blocks run out, and
// cancellation in every phase. Every request's greedy tokens are checked
// against the same request generated alone, and the KV pool must be whole
// again once the engine is idle. Then the KV pool by itself: its block
// count for a budget, host or accounting-only (the GPU runner's).
#include "router_service/batch_engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "core/model/model_weights.h"
#include "engine/cpu_model_runner.h"
#include "engine/kv_block_pool.h"
#include "engine/kv_cache.h"
#include "engine/local_expert_dispatch.h"
#include "tests/support/test_models.h"

namespace moe::testing {
namespace {

GenerationRequest Greedy(std::vector<int32_t> prompt, int max_tokens) {
  GenerationRequest request;
  request.prompt = std::move(prompt);
  request.max_tokens = max_tokens;
  request.stop_on_eos = false;
  request.sampling.temperature = 0.0f;
  return request;
}

// Local experts that let a test act at the start of every layer's dispatch,
// on the engine thread: to cancel a request in a given phase of a step.
class HookedDispatch : public ExpertDispatch {
 public:
  HookedDispatch(const ModelWeights& weights, ThreadPool& pool)
      : local_(weights, pool) {}
  std::unique_ptr<PendingExperts> Start(const ExpertBatch& batch,
                                        float* out) override {
    if (hook) hook(batch);
    return local_.Start(batch, out);
  }
  std::function<void(const ExpertBatch&)> hook;

 private:
  LocalExpertDispatch local_;
};

// How one request ended, as the engine reported it.
struct Outcome {
  std::vector<int32_t> tokens;
  std::optional<absl::StatusOr<FinishReason>> finish;
};

class BatchEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    spec_.layers = 2;
    auto loaded = ModelWeights::Load(MakeTestModel(spec_));
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    weights_ = std::move(*loaded);
    dispatch_ = std::make_unique<HookedDispatch>(*weights_, pool_);
  }

  // A runner whose KV cache holds `blocks` blocks of `block_size`.
  std::unique_ptr<ModelRunner> Runner(int64_t blocks, int block_size = 4,
                                      int micro_batches = 1) {
    const ModelConfig& c = weights_->config();
    ModelRunnerOptions options;
    options.kv_cache.block_size = block_size;
    options.kv_cache.memory_bytes = blocks * 2 * c.num_layers * block_size *
                                    c.num_kv_heads * c.head_dim *
                                    static_cast<int64_t>(sizeof(float));
    options.micro_batches = micro_batches;
    return std::make_unique<CpuModelRunner>(*weights_, *dispatch_, pool_,
                                            options);
  }

  // The request generated alone, one sequence at a time.
  std::vector<int32_t> Alone(const GenerationRequest& request) {
    auto runner = Runner(1024);
    auto result = Generate(*runner, request);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? result->tokens : std::vector<int32_t>{};
  }

  // Request `i` ended by its length with the tokens it gets alone.
  void ExpectAsAlone(const GenerationRequest& request, const Outcome& outcome,
                     size_t i) {
    ASSERT_TRUE(outcome.finish.has_value()) << "request " << i;
    ASSERT_TRUE(outcome.finish->ok())
        << "request " << i << ": " << outcome.finish->status();
    EXPECT_EQ(**outcome.finish, FinishReason::kLength) << "request " << i;
    EXPECT_EQ(outcome.tokens, Alone(request)) << "request " << i;
  }

  // Submits every request, waits until all ended, and returns how.
  std::vector<Outcome> RunAll(
      BatchEngine& engine, const std::vector<GenerationRequest>& requests,
      const std::function<void(size_t, size_t)>& on_token = nullptr) {
    std::vector<Outcome> outcomes(requests.size());
    std::mutex mutex;
    std::condition_variable done;
    size_t finished = 0;
    for (size_t i = 0; i < requests.size(); ++i) {
      EngineRequest request;
      request.id = std::to_string(i);
      request.generation = requests[i];
      request.on_token = [&, i](int32_t token) {
        size_t count;
        {
          std::lock_guard<std::mutex> lock(mutex);
          outcomes[i].tokens.push_back(token);
          count = outcomes[i].tokens.size();
        }
        if (on_token) on_token(i, count);
      };
      request.on_finish = [&, i](absl::StatusOr<FinishReason> finish) {
        std::lock_guard<std::mutex> lock(mutex);
        EXPECT_FALSE(outcomes[i].finish.has_value()) << "finished twice: " << i;
        outcomes[i].finish = std::move(finish);
        ++finished;
        done.notify_all();
      };
      EXPECT_TRUE(engine.Submit(std::move(request)).ok());
    }
    std::unique_lock<std::mutex> lock(mutex);
    EXPECT_TRUE(done.wait_for(lock, std::chrono::seconds(120), [&] {
      return finished == requests.size();
    })) << "requests did not all end";
    return outcomes;
  }

  // The pool is whole again once nothing runs.
  static void ExpectIdleAndWhole(const BatchEngine& engine) {
    const EngineStatus status = engine.Status();
    EXPECT_EQ(status.running, 0);
    EXPECT_EQ(status.queued, 0);
    EXPECT_EQ(status.kv_tokens_used, 0);
    EXPECT_EQ(status.kv_blocks_free, status.kv_blocks_total);
  }

  TestModelSpec spec_;
  ThreadPool pool_{2};
  std::unique_ptr<ModelWeights> weights_;
  std::unique_ptr<HookedDispatch> dispatch_;
};

TEST_F(BatchEngineTest, MixedLengthsGetTheTokensTheyGetAlone) {
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < 12; ++i) {
    requests.push_back(Greedy(RandomTokens(1 + (i * 7) % 40, spec_.vocab, i),
                              2 + (i * 5) % 17));
  }
  auto runner = Runner(1024);
  EngineOptions options;
  options.max_batch = 5;
  options.max_step_tokens = 12;  // prompts of up to 40 take several steps
  BatchEngine engine(*runner, options);
  const std::vector<Outcome> outcomes = RunAll(engine, requests);
  int64_t prompt_tokens = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    ExpectAsAlone(requests[i], outcomes[i], i);
    prompt_tokens += static_cast<int64_t>(requests[i].prompt.size());
  }
  const EngineStatus status = engine.Status();
  EXPECT_EQ(status.prefill_tokens, prompt_tokens);
  EXPECT_EQ(status.preemptions, 0);
  ExpectIdleAndWhole(engine);
}

TEST_F(BatchEngineTest, LongPromptIsChunkedWithoutStallingDecode) {
  auto runner = Runner(1024);
  EngineOptions options;
  options.max_batch = 4;
  options.max_step_tokens = 8;
  BatchEngine engine(*runner, options);
  // Request 0 decodes; after its 5th token, request 1 arrives with a
  // 200-token prompt, read 7 tokens a step. Request 0 still gets one token
  // every forward pass.
  const GenerationRequest decoding =
      Greedy(RandomTokens(3, spec_.vocab, 1), 40);
  const GenerationRequest reading =
      Greedy(RandomTokens(200, spec_.vocab, 2), 3);
  std::mutex mutex;
  std::condition_variable done;
  int finished = 0;
  std::vector<int32_t> tokens[2];
  std::vector<int64_t> passes_at_token;
  int64_t prefill_before_late_request = -1;
  auto make = [&](int i, const GenerationRequest& generation) {
    EngineRequest request;
    request.id = std::to_string(i);
    request.generation = generation;
    request.on_finish = [&, i](absl::StatusOr<FinishReason> finish) {
      EXPECT_TRUE(finish.ok()) << "request " << i << ": " << finish.status();
      std::lock_guard<std::mutex> lock(mutex);
      ++finished;
      done.notify_all();
    };
    return request;
  };
  int64_t passes_at_late_submit = 0;
  int64_t passes_at_late_first_token = 0;
  EngineRequest late = make(1, reading);
  late.on_token = [&](int32_t token) {
    if (tokens[1].empty()) {
      passes_at_late_first_token = runner->counters().forward_passes;
    }
    tokens[1].push_back(token);
  };
  int64_t largest_step = 0;
  dispatch_->hook = [&](const ExpertBatch& batch) {
    largest_step = std::max(largest_step, batch.n);  // a step's tokens
  };
  EngineRequest first = make(0, decoding);
  // Callbacks run on the engine thread, between steps.
  first.on_token = [&](int32_t token) {
    tokens[0].push_back(token);
    passes_at_token.push_back(runner->counters().forward_passes);
    if (tokens[0].size() == 5) {
      prefill_before_late_request = engine.Status().prefill_tokens;
      passes_at_late_submit = runner->counters().forward_passes;
      EXPECT_TRUE(engine.Submit(std::move(late)).ok());
    }
  };
  ASSERT_TRUE(engine.Submit(std::move(first)).ok());
  {
    std::unique_lock<std::mutex> lock(mutex);
    ASSERT_TRUE(done.wait_for(lock, std::chrono::seconds(60),
                              [&] { return finished == 2; }));
  }
  dispatch_->hook = nullptr;  // Alone() shares the dispatch
  EXPECT_EQ(tokens[0], Alone(decoding));
  EXPECT_EQ(tokens[1], Alone(reading));
  ASSERT_EQ(passes_at_token.size(), 40u);
  for (size_t t = 1; t < passes_at_token.size(); ++t) {
    EXPECT_EQ(passes_at_token[t] - passes_at_token[t - 1], 1) << "token " << t;
  }
  // The 200 tokens were read 7 a pass (8 minus request 0's token).
  EXPECT_EQ(engine.Status().prefill_tokens - prefill_before_late_request, 200);
  EXPECT_EQ(passes_at_late_first_token - passes_at_late_submit, (200 + 6) / 7);
  EXPECT_LE(largest_step, 8);
  ExpectIdleAndWhole(engine);
}

TEST_F(BatchEngineTest, PreemptedSequencesRecomputeAndGetTheSameTokens) {
  // 24 blocks of 4 positions: each request needs up to 6 + 30 = 36 positions
  // (9 blocks), so three cannot all grow at once.
  auto runner = Runner(24);
  EngineOptions options;
  options.max_batch = 4;
  options.max_step_tokens = 16;
  BatchEngine engine(*runner, options);
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < 5; ++i) {
    requests.push_back(Greedy(RandomTokens(6, spec_.vocab, 100 + i), 30));
  }
  const std::vector<Outcome> outcomes = RunAll(engine, requests);
  for (size_t i = 0; i < requests.size(); ++i) {
    ExpectAsAlone(requests[i], outcomes[i], i);
  }
  const EngineStatus status = engine.Status();
  EXPECT_GT(status.preemptions, 0);
  // Recomputation reads more than the prompts.
  EXPECT_GT(status.prefill_tokens, 5 * 6);
  ExpectIdleAndWhole(engine);
}

TEST_F(BatchEngineTest, RequestLargerThanTheCacheIsRejectedNamingMaxTokens) {
  auto runner = Runner(4);  // 16 positions
  BatchEngine engine(*runner, EngineOptions{});
  EngineRequest request;
  request.id = "big";
  request.generation = Greedy(RandomTokens(10, spec_.vocab, 1), 7);
  request.on_token = [](int32_t) {};
  request.on_finish = [](absl::StatusOr<FinishReason>) {
    ADD_FAILURE() << "a rejected request's callbacks ran";
  };
  const absl::Status status = engine.Submit(std::move(request));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("max_tokens"), std::string::npos)
      << status.message();
  EXPECT_NE(status.message().find("16"), std::string::npos) << status.message();
}

// Cancels request `victim` when `when` says so (checked at every layer's
// dispatch, on the engine thread), and checks it ends CANCELLED while the
// others finish with their tokens and the pool is whole again.
class CancelTest : public BatchEngineTest {
 protected:
  void ExpectCancelled(BatchEngine& engine,
                       const std::vector<GenerationRequest>& requests,
                       size_t victim, const std::function<bool()>& when) {
    bool cancelled = false;
    dispatch_->hook = [&](const ExpertBatch&) {
      if (!cancelled && when()) {
        cancelled = true;
        EXPECT_TRUE(engine.Cancel(std::to_string(victim)).ok());
      }
    };
    const std::vector<Outcome> outcomes = RunAll(engine, requests);
    dispatch_->hook = nullptr;
    ASSERT_TRUE(cancelled) << "the phase never came";
    for (size_t i = 0; i < requests.size(); ++i) {
      ASSERT_TRUE(outcomes[i].finish.has_value());
      if (i == victim) {
        EXPECT_EQ(outcomes[i].finish->status().code(),
                  absl::StatusCode::kCancelled);
        EXPECT_LT(outcomes[i].tokens.size(),
                  static_cast<size_t>(requests[i].max_tokens));
      } else {
        ExpectAsAlone(requests[i], outcomes[i], i);
      }
    }
    ExpectIdleAndWhole(engine);
  }
};

TEST_F(CancelTest, WhileQueued) {
  auto runner = Runner(1024);
  EngineOptions options;
  options.max_batch = 1;  // request 1 waits behind request 0
  BatchEngine engine(*runner, options);
  ExpectCancelled(engine,
                  {Greedy(RandomTokens(4, spec_.vocab, 1), 12),
                   Greedy(RandomTokens(4, spec_.vocab, 2), 12)},
                  1, [&] { return engine.Status().queued == 1; });
}

TEST_F(CancelTest, WhileItsPromptIsRead) {
  auto runner = Runner(1024);
  EngineOptions options;
  options.max_step_tokens = 4;  // 60 prompt tokens take 15 steps
  BatchEngine engine(*runner, options);
  ExpectCancelled(engine,
                  {Greedy(RandomTokens(4, spec_.vocab, 1), 30),
                   Greedy(RandomTokens(60, spec_.vocab, 2), 5)},
                  1, [&] {
                    const EngineStatus s = engine.Status();
                    return s.prefill_tokens > 10 && s.prefill_tokens < 50;
                  });
}

TEST_F(CancelTest, WhileDecoding) {
  auto runner = Runner(1024);
  BatchEngine engine(*runner, EngineOptions{});
  ExpectCancelled(engine,
                  {Greedy(RandomTokens(4, spec_.vocab, 1), 20),
                   Greedy(RandomTokens(5, spec_.vocab, 2), 20)},
                  0, [&] { return engine.Status().generated_tokens >= 10; });
}

TEST_F(CancelTest, WhilePreempted) {
  auto runner = Runner(24);
  EngineOptions options;
  options.max_batch = 4;
  BatchEngine engine(*runner, options);
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < 3; ++i) {
    requests.push_back(Greedy(RandomTokens(6, spec_.vocab, 100 + i), 30));
  }
  // The newest running request is the one preempted first.
  ExpectCancelled(engine, requests, 2,
                  [&] { return engine.Status().preemptions > 0; });
}

TEST_F(BatchEngineTest, TwoMicroBatchesGetTheSameTokens) {
  auto runner = Runner(1024, 16, /*micro_batches=*/2);
  BatchEngine engine(*runner, EngineOptions{});
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < 6; ++i) {
    requests.push_back(
        Greedy(RandomTokens(2 + 3 * i, spec_.vocab, 50 + i), 4 + i));
  }
  const std::vector<Outcome> outcomes = RunAll(engine, requests);
  for (size_t i = 0; i < requests.size(); ++i) {
    ExpectAsAlone(requests[i], outcomes[i], i);
  }
  EXPECT_GT(runner->counters().split_passes, 0);
  ExpectIdleAndWhole(engine);
}

// Tasks run between steps: never between two layers of a step, on the engine
// thread, while requests go on with the tokens they get alone; and at once
// when the engine is idle.
TEST_F(BatchEngineTest, TasksRunBetweenStepsOnly) {
  auto runner = Runner(1024, 16);
  BatchEngine engine(*runner, EngineOptions{});
  std::mutex mutex;
  std::vector<int> log;  // the layer of each dispatch; -1 for a task
  std::thread::id engine_thread;
  dispatch_->hook = [&](const ExpertBatch& batch) {
    std::lock_guard<std::mutex> lock(mutex);
    log.push_back(batch.layer);
    engine_thread = std::this_thread::get_id();
  };
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < 4; ++i) {
    requests.push_back(Greedy(RandomTokens(3 + i, spec_.vocab, 70 + i), 24));
  }
  std::atomic<bool> stop{false};
  std::atomic<int> ran{0};
  std::atomic<bool> always_on_engine_thread{true};
  std::thread changer([&] {
    while (!stop) {
      ASSERT_TRUE(engine
                      .RunBetweenSteps([&] {
                        std::lock_guard<std::mutex> lock(mutex);
                        log.push_back(-1);
                        if (engine_thread != std::thread::id() &&
                            engine_thread != std::this_thread::get_id()) {
                          always_on_engine_thread = false;
                        }
                      })
                      .ok());
      ++ran;
    }
  });
  const std::vector<Outcome> outcomes = RunAll(engine, requests);
  stop = true;
  changer.join();
  for (size_t i = 0; i < requests.size(); ++i) {
    ExpectAsAlone(requests[i], outcomes[i], i);
  }
  EXPECT_GT(ran, 0);
  EXPECT_TRUE(always_on_engine_thread);
  // A task comes after the last layer of a step or before the first one.
  int previous = spec_.layers - 1;
  for (int entry : log) {
    if (entry < 0) {
      EXPECT_EQ(previous, spec_.layers - 1) << "a task ran within a step";
    } else {
      EXPECT_EQ(entry, previous == spec_.layers - 1 ? 0 : previous + 1);
      previous = entry;
    }
  }
  bool idle_ran = false;
  EXPECT_TRUE(engine.RunBetweenSteps([&] { idle_ran = true; }).ok());
  EXPECT_TRUE(idle_ran);
  ExpectIdleAndWhole(engine);
}

// The pool the engine's caches draw from, by itself: 2 layers, kv_dim 8,
// blocks of 4 positions, so a block is 2 * 2 * 4 * 8 = 128 elements.
constexpr int kPoolLayers = 2;
constexpr int64_t kPoolKvDim = 8;
constexpr int64_t kBlockElements = 2 * kPoolLayers * 4 * kPoolKvDim;

KvCacheOptions PoolOptions(int64_t memory_bytes) {
  KvCacheOptions options;
  options.block_size = 4;
  options.memory_bytes = memory_bytes;
  return options;
}

TEST(KvBlockPoolTest, HostPoolCountsFloat32Blocks) {
  // Ten float32 blocks and a bit: the bit is not a block.
  KvBlockPool pool(kPoolLayers, kPoolKvDim,
                   PoolOptions(10 * kBlockElements * 4 + 100));
  EXPECT_EQ(pool.storage(), KvStorage::kHostFloat32);
  EXPECT_EQ(pool.element_bytes(), 4);
  EXPECT_EQ(pool.total_blocks(), 10);
  // Every block's keys and values are distinct host memory.
  EXPECT_EQ(pool.values(0, 0) - pool.keys(0, 0), 4 * kPoolKvDim);
  EXPECT_EQ(pool.keys(9, 1) - pool.keys(0, 0),
            (9 * 2 + 1) * 2 * 4 * kPoolKvDim);
}

TEST(KvBlockPoolTest, AccountingOnlyPoolCountsBf16Blocks) {
  const int64_t budget = 10 * kBlockElements * 2 + 100;
  KvBlockPool pool(kPoolLayers, kPoolKvDim, PoolOptions(budget),
                   KvStorage::kAccountingOnlyBf16);
  EXPECT_EQ(pool.storage(), KvStorage::kAccountingOnlyBf16);
  EXPECT_EQ(pool.element_bytes(), 2);
  // Twice the float32 pool's blocks for the same budget, and the device
  // pools of that many blocks fit in it.
  EXPECT_EQ(pool.total_blocks(), 10);
  EXPECT_EQ(
      KvBlockPool(kPoolLayers, kPoolKvDim, PoolOptions(budget)).total_blocks(),
      5);
  EXPECT_LE(pool.total_blocks() * kBlockElements * pool.element_bytes(),
            budget);
  EXPECT_EQ(pool.free_blocks(), 10);

  // Blocks come and go as in a host pool: all or none, distinct ids.
  std::optional<std::vector<int32_t>> taken = pool.Allocate(4);
  ASSERT_TRUE(taken.has_value());
  EXPECT_EQ(pool.free_blocks(), 6);
  EXPECT_FALSE(pool.Allocate(7).has_value());
  EXPECT_EQ(pool.free_blocks(), 6);
  std::optional<std::vector<int32_t>> rest = pool.Allocate(6);
  ASSERT_TRUE(rest.has_value());
  std::vector<int32_t> all = *taken;
  all.insert(all.end(), rest->begin(), rest->end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(pool.free_blocks(), 0);
  pool.Free(*taken);
  pool.Free(*rest);
  EXPECT_EQ(pool.free_blocks(), 10);

  // A sequence's cache takes and gives back its blocks the same way.
  {
    SequenceKvCache cache(pool);
    ASSERT_TRUE(cache.Reserve(4 * 3 + 1).ok());
    EXPECT_EQ(cache.num_blocks(), 4);
    EXPECT_EQ(pool.free_blocks(), 6);
    EXPECT_EQ(cache.Reserve(4 * 11).code(),
              absl::StatusCode::kResourceExhausted);
  }
  EXPECT_EQ(pool.free_blocks(), 10);
}

TEST(KvBlockPoolTest, AccountingOnlyPoolOfAGpuSizedBudgetHoldsNoHostMemory) {
  // 240 GiB for 32 layers of 8 KV heads of 128: float32 host storage of
  // that size would not be allocatable here.
  KvCacheOptions options;
  options.block_size = 16;
  options.memory_bytes = int64_t{240} << 30;
  KvBlockPool pool(32, 8 * 128, options, KvStorage::kAccountingOnlyBf16);
  EXPECT_EQ(pool.total_blocks(),
            options.memory_bytes / (int64_t{2} * 32 * 16 * 8 * 128 * 2));
}

TEST(KvBlockPoolDeathTest, AccountingOnlyPoolHasNoKeysOrValues) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  KvBlockPool pool(kPoolLayers, kPoolKvDim, PoolOptions(1 << 20),
                   KvStorage::kAccountingOnlyBf16);
  EXPECT_DEATH(pool.keys(0, 0), "kAccountingOnlyBf16");
  EXPECT_DEATH(pool.values(0, 0), "kAccountingOnlyBf16");
}

}  // namespace
}  // namespace moe::testing

#include "router_service/batch_engine.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace moe {

struct BatchEngine::Sequence {
  Sequence(EngineRequest r, SequenceKvCache c, int64_t order)
      : request(std::move(r)),
        cache(std::move(c)),
        sampler(request.generation.sampling),
        arrival(order) {}

  // The prompt, then the generated tokens: what the cache must hold.
  int64_t context_length() const {
    return static_cast<int64_t>(request.generation.prompt.size() +
                                tokens.size());
  }
  int32_t context_at(int64_t i) const {
    const std::vector<int32_t>& prompt = request.generation.prompt;
    const int64_t prompt_size = static_cast<int64_t>(prompt.size());
    return i < prompt_size ? prompt[i] : tokens[i - prompt_size];
  }
  // Context tokens not in the cache yet: 1 while decoding, more while the
  // prompt is read or after a preemption.
  int64_t uncached() const { return context_length() - cache.length(); }

  EngineRequest request;
  SequenceKvCache cache;
  Sampler sampler;
  const int64_t arrival;        // order of submission
  std::vector<int32_t> tokens;  // generated so far
  bool cancelled = false;       // guarded by the engine's mutex
  // Set once the sequence ends.
  std::optional<absl::StatusOr<FinishReason>> outcome;
};

BatchEngine::BatchEngine(ModelRunner& runner, const EngineOptions& options)
    : runner_(runner), options_(options) {
  status_.routed_counts = runner_.routed_counts();
  status_.kv_blocks_total = runner_.kv_pool().total_blocks();
  status_.kv_blocks_free = runner_.kv_pool().free_blocks();
  thread_ = std::thread([this] { Loop(); });
}

BatchEngine::~BatchEngine() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
  const absl::Status stopped =
      absl::UnavailableError("the router is shutting down");
  for (auto& sequence : queue_) sequence->request.on_finish(stopped);
  for (auto& sequence : running_) sequence->request.on_finish(stopped);
  for (auto& [task, ran] : between_steps_) ran.set_value(false);
}

absl::Status BatchEngine::RunBetweenSteps(std::function<void()> task) {
  std::future<bool> ran;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) {
      return absl::UnavailableError("the router is shutting down");
    }
    between_steps_.emplace_back(std::move(task), std::promise<bool>());
    ran = between_steps_.back().second.get_future();
  }
  wake_.notify_all();
  if (!ran.get()) {
    return absl::UnavailableError(
        "the router shut down before the change could be made");
  }
  return absl::OkStatus();
}

void BatchEngine::RunTasksBetweenSteps() {
  std::deque<std::pair<std::function<void()>, std::promise<bool>>> tasks;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    tasks.swap(between_steps_);
  }
  for (auto& [task, ran] : tasks) {
    task();
    ran.set_value(true);
  }
}

absl::Status BatchEngine::Submit(EngineRequest request) {
  const ModelConfig& config = runner_.config();
  if (absl::Status valid =
          ValidateGenerationRequest(config, request.generation);
      !valid.ok()) {
    return valid;
  }
  // The longest the sequence can get must fit the whole cache, or it could
  // neither run nor wait for room.
  const int64_t longest =
      std::min<int64_t>(static_cast<int64_t>(request.generation.prompt.size()) +
                            request.generation.max_tokens,
                        config.max_position_embeddings);
  const KvBlockPool& pool = runner_.kv_pool();
  if (pool.BlocksFor(longest) > pool.total_blocks()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_tokens: the prompt and ", request.generation.max_tokens,
        " new tokens need ", longest,
        " KV positions; the router's KV cache "
        "holds ",
        pool.total_blocks() * pool.block_size()));
  }
  std::unique_ptr<Sequence> sequence;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const std::string& id = request.id;
    if (live_.count(id) > 0) {
      return absl::AlreadyExistsError(
          absl::StrCat("request_id: \"", id, "\" is already running"));
    }
    if (static_cast<int>(queue_.size()) >= options_.max_queue) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the router's queue is full (", options_.max_queue, " requests)"));
    }
    sequence = std::make_unique<Sequence>(std::move(request),
                                          runner_.NewCache(), next_arrival_++);
    live_[sequence->request.id] = sequence.get();
    queue_.push_back(std::move(sequence));
    status_.queued = static_cast<int>(queue_.size());
  }
  wake_.notify_all();
  return absl::OkStatus();
}

absl::Status BatchEngine::Cancel(const std::string& id) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = live_.find(id);
  if (it == live_.end()) {
    return absl::NotFoundError(
        absl::StrCat("request_id: no live request \"", id, "\""));
  }
  it->second->cancelled = true;
  wake_.notify_all();
  return absl::OkStatus();
}

EngineStatus BatchEngine::Status() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return status_;
}

void BatchEngine::PublishStatus() {
  int64_t kv_used = 0;
  for (const auto& s : running_) kv_used += s->cache.length();
  status_.kv_tokens_used = kv_used;
  status_.kv_blocks_free = runner_.kv_pool().free_blocks();
  status_.queued = static_cast<int>(queue_.size());
  status_.running = static_cast<int>(running_.size());
  status_.runner = runner_.counters();
  status_.routed_counts = runner_.routed_counts();
}

std::vector<std::unique_ptr<BatchEngine::Sequence>> BatchEngine::UpdateBatch() {
  std::vector<std::unique_ptr<Sequence>> ended;
  std::lock_guard<std::mutex> lock(mutex_);
  const absl::Time now = absl::Now();
  // Why a sequence must stop before its next step, if it must.
  auto stop_reason = [now](const Sequence& s) -> absl::Status {
    if (s.cancelled) return absl::CancelledError("the request was cancelled");
    if (s.request.deadline < now) {
      return absl::DeadlineExceededError(
          "the request's deadline passed before it finished");
    }
    return absl::OkStatus();
  };
  auto remove_stopped = [&](auto& sequences) {
    for (auto it = sequences.begin(); it != sequences.end();) {
      if (absl::Status why = stop_reason(**it); !why.ok()) {
        (*it)->cache.Release();
        (*it)->outcome = std::move(why);
        live_.erase((*it)->request.id);
        ended.push_back(std::move(*it));
        it = sequences.erase(it);
      } else {
        ++it;
      }
    }
  };
  remove_stopped(running_);
  remove_stopped(queue_);
  // A sequence joins with blocks for its whole context. The running ones
  // keep one free block each for their next token, so that admitting does
  // not force a preemption on the very next step.
  bool admitted = false;
  KvBlockPool& pool = runner_.kv_pool();
  while (!queue_.empty() &&
         static_cast<int>(running_.size()) < options_.max_batch) {
    Sequence& next = *queue_.front();
    const int64_t headroom = static_cast<int64_t>(running_.size());
    if (pool.free_blocks() - pool.BlocksFor(next.context_length()) < headroom ||
        !next.cache.Reserve(next.context_length()).ok()) {
      break;
    }
    running_.push_back(std::move(queue_.front()));
    queue_.pop_front();
    admitted = true;
  }
  // Preempted sequences rejoin in their original place.
  if (admitted) {
    std::sort(
        running_.begin(), running_.end(),
        [](const auto& a, const auto& b) { return a->arrival < b->arrival; });
  }
  PublishStatus();
  return ended;
}

void BatchEngine::PreemptNewest() {
  std::unique_ptr<Sequence> newest = std::move(running_.back());
  running_.pop_back();
  newest->cache.Release();
  std::lock_guard<std::mutex> lock(mutex_);
  ++status_.preemptions;
  // Ahead of new requests; newest preempted first, so the queue's head stays
  // in order of arrival.
  queue_.push_front(std::move(newest));
}

std::vector<BatchEngine::Chunk> BatchEngine::PlanStep() {
  std::vector<Chunk> plan;
  // Decoding sequences first, each one token; a sequence that needs a new
  // block and finds none preempts the newest one (possibly itself).
  for (size_t i = 0; i < running_.size(); ++i) {
    Sequence& s = *running_[i];
    if (s.uncached() != 1) continue;
    bool preempted_itself = false;
    while (!s.cache.Reserve(s.cache.length() + 1).ok()) {
      preempted_itself = running_.back().get() == &s;
      PreemptNewest();
      if (preempted_itself) break;
    }
    if (preempted_itself) break;
    plan.push_back({&s, 1});
  }
  // Then prompt chunks, oldest first, within the step's token budget. Their
  // blocks were taken when they joined.
  int64_t budget = options_.max_step_tokens - static_cast<int64_t>(plan.size());
  for (const std::unique_ptr<Sequence>& s : running_) {
    if (budget <= 0) break;
    if (s->uncached() <= 1) continue;
    const int64_t count = std::min(s->uncached(), budget);
    if (!s->cache.Reserve(s->cache.length() + count).ok()) continue;
    plan.push_back({s.get(), count});
    budget -= count;
  }
  return plan;
}

std::vector<std::unique_ptr<BatchEngine::Sequence>> BatchEngine::Step(
    const std::vector<Chunk>& plan) {
  std::vector<std::vector<int32_t>> inputs(plan.size());
  std::vector<SequenceStep> steps;
  steps.reserve(plan.size());
  int64_t prefilled = 0;
  for (size_t i = 0; i < plan.size(); ++i) {
    Sequence& s = *plan[i].sequence;
    const int64_t begin = s.cache.length();
    for (int64_t p = begin; p < begin + plan[i].count; ++p) {
      inputs[i].push_back(s.context_at(p));
    }
    const bool completes = begin + plan[i].count == s.context_length();
    const bool decode = !s.tokens.empty() && plan[i].count == 1 &&
                        begin + 1 == s.context_length();
    if (!decode) prefilled += plan[i].count;
    steps.push_back({inputs[i], &s.cache,
                     completes ? LogitsFor::kLastToken : LogitsFor::kNone,
                     s.request.deadline});
  }
  std::vector<absl::StatusOr<std::vector<float>>> logits =
      runner_.ForwardBatch(steps);
  int64_t sampled = 0;
  for (size_t i = 0; i < plan.size(); ++i) {
    Sequence& s = *plan[i].sequence;
    absl::Status status = logits[i].status();
    if (status.ok() && steps[i].logits_for == LogitsFor::kNone) continue;
    if (status.ok()) status = CheckFiniteLogits(*logits[i], s.tokens.size());
    if (!status.ok()) {
      s.outcome = status;
      continue;
    }
    s.tokens.push_back(s.sampler.Sample(*logits[i]));
    ++sampled;
    s.request.on_token(s.tokens.back());
    if (const std::optional<FinishReason> finish =
            FinishAfter(runner_.config(), s.request.generation, s.tokens,
                        s.cache.length())) {
      s.outcome = *finish;
    }
  }
  std::vector<std::unique_ptr<Sequence>> ended;
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto it = running_.begin(); it != running_.end();) {
    if ((*it)->outcome.has_value()) {
      (*it)->cache.Release();
      live_.erase((*it)->request.id);
      ended.push_back(std::move(*it));
      it = running_.erase(it);
    } else {
      ++it;
    }
  }
  ++status_.steps;
  status_.generated_tokens += sampled;
  status_.prefill_tokens += prefilled;
  PublishStatus();
  return ended;
}

void BatchEngine::Loop() {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] {
        return stopping_ || !queue_.empty() || !running_.empty() ||
               !between_steps_.empty();
      });
      if (stopping_) return;
    }
    RunTasksBetweenSteps();
    for (auto& s : UpdateBatch()) s->request.on_finish(*s->outcome);
    // An empty pool always admits the queue's head (Submit checked that it
    // fits), so nothing is running only when nothing is queued either.
    if (running_.empty()) continue;
    const std::vector<Chunk> plan = PlanStep();
    const absl::Time started = absl::Now();
    std::vector<std::unique_ptr<Sequence>> ended = Step(plan);
    if (options_.on_step) {
      StepRecord record{absl::Now() - started, static_cast<int>(plan.size())};
      for (const Chunk& chunk : plan) record.tokens += chunk.count;
      options_.on_step(record);
    }
    for (auto& s : ended) s->request.on_finish(*s->outcome);
  }
}

}  // namespace moe

#include "router_service/batch_engine.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace moe {

struct BatchEngine::Sequence {
  Sequence(EngineRequest r, SequenceKvCache c, int64_t reserve)
      : request(std::move(r)),
        cache(std::move(c)),
        sampler(request.generation.sampling),
        reserved(reserve) {}

  EngineRequest request;
  SequenceKvCache cache;
  Sampler sampler;
  const int64_t reserved;       // KV positions held for it
  std::vector<int32_t> tokens;  // generated so far
  bool cancelled = false;       // guarded by the engine's mutex
  // Set once the sequence ends.
  std::optional<absl::StatusOr<FinishReason>> outcome;
};

BatchEngine::BatchEngine(ModelRunner& runner, const EngineOptions& options)
    : runner_(runner), options_(options) {
  status_.routed_counts = runner_.routed_counts();
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
}

absl::Status BatchEngine::Submit(EngineRequest request) {
  const ModelConfig& config = runner_.config();
  if (absl::Status valid =
          ValidateGenerationRequest(config, request.generation);
      !valid.ok()) {
    return valid;
  }
  const int64_t reserve =
      std::min<int64_t>(static_cast<int64_t>(request.generation.prompt.size()) +
                            request.generation.max_tokens,
                        config.max_position_embeddings);
  if (reserve > options_.kv_token_capacity) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_tokens: the prompt and ", request.generation.max_tokens,
        " new tokens need ", reserve, " KV positions; the router has ",
        options_.kv_token_capacity));
  }
  auto sequence = std::make_unique<Sequence>(std::move(request),
                                             runner_.NewCache(), reserve);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const std::string& id = sequence->request.id;
    if (live_.count(id) > 0) {
      return absl::AlreadyExistsError(
          absl::StrCat("request_id: \"", id, "\" is already running"));
    }
    if (static_cast<int>(queue_.size()) >= options_.max_queue) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the router's queue is full (", options_.max_queue, " requests)"));
    }
    live_[id] = sequence.get();
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
  status_.queued = static_cast<int>(queue_.size());
  status_.running = static_cast<int>(running_.size());
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
  auto end = [&](std::unique_ptr<Sequence> s, absl::Status why) {
    s->outcome = std::move(why);
    live_.erase(s->request.id);
    ended.push_back(std::move(s));
  };
  for (auto it = running_.begin(); it != running_.end();) {
    if (absl::Status why = stop_reason(**it); !why.ok()) {
      kv_reserved_ -= (*it)->reserved;
      end(std::move(*it), why);
      it = running_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (absl::Status why = stop_reason(**it); !why.ok()) {
      end(std::move(*it), why);
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
  while (!queue_.empty() &&
         static_cast<int>(running_.size()) < options_.max_batch &&
         kv_reserved_ + queue_.front()->reserved <=
             options_.kv_token_capacity) {
    kv_reserved_ += queue_.front()->reserved;
    running_.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  PublishStatus();
  return ended;
}

std::vector<std::unique_ptr<BatchEngine::Sequence>> BatchEngine::Step() {
  std::vector<SequenceStep> steps;
  steps.reserve(running_.size());
  for (const auto& s : running_) {
    const bool prefill = s->tokens.empty();
    steps.push_back(
        {prefill ? std::span<const int32_t>(s->request.generation.prompt)
                 : std::span<const int32_t>(&s->tokens.back(), 1),
         &s->cache, LogitsFor::kLastToken, s->request.deadline});
  }
  std::vector<absl::StatusOr<std::vector<float>>> logits =
      runner_.ForwardBatch(steps);
  std::vector<std::unique_ptr<Sequence>> ended;
  int64_t sampled = 0;
  for (size_t i = 0; i < running_.size(); ++i) {
    Sequence& s = *running_[i];
    absl::Status status = logits[i].status();
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
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto it = running_.begin(); it != running_.end();) {
    if ((*it)->outcome.has_value()) {
      live_.erase((*it)->request.id);
      kv_reserved_ -= (*it)->reserved;
      ended.push_back(std::move(*it));
      it = running_.erase(it);
    } else {
      ++it;
    }
  }
  PublishStatus();
  ++status_.steps;
  status_.generated_tokens += sampled;
  status_.routed_counts = runner_.routed_counts();
  return ended;
}

void BatchEngine::Loop() {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] {
        return stopping_ || !queue_.empty() || !running_.empty();
      });
      if (stopping_) return;
    }
    for (auto& s : UpdateBatch()) s->request.on_finish(*s->outcome);
    if (running_.empty()) continue;
    for (auto& s : Step()) s->request.on_finish(*s->outcome);
  }
}

}  // namespace moe

#include "router_service/batch_generate.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>

#include "absl/strings/str_cat.h"

namespace moe {

absl::StatusOr<BatchGenerateResult> GenerateBatch(
    BatchEngine& engine, const std::vector<GenerationRequest>& requests) {
  using Clock = std::chrono::steady_clock;
  struct Shared {
    std::mutex mutex;
    std::condition_variable done;
    size_t finished = 0;
    absl::Status status;
    Clock::time_point last_first_token;
    std::vector<Clock::time_point> token_times;  // of every token
  } shared;
  // Ids unique in the process, so batches can share an engine.
  static std::atomic<int64_t> next_batch{0};
  const std::string prefix = absl::StrCat("batch-", next_batch++, "-");
  auto id = [&prefix](size_t i) { return absl::StrCat(prefix, i); };
  auto cancel_all = [&](size_t count) {
    for (size_t k = 0; k < count; ++k) engine.Cancel(id(k)).IgnoreError();
  };
  BatchGenerateResult result;
  result.tokens.resize(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    EngineRequest request;
    request.id = id(i);
    request.generation = requests[i];
    // Callbacks run on the engine thread; `shared` outlives them because
    // this function waits for every on_finish.
    request.on_token = [&shared, &result, i](int32_t token) {
      std::lock_guard<std::mutex> lock(shared.mutex);
      const Clock::time_point now = Clock::now();
      if (result.tokens[i].empty()) {
        shared.last_first_token = std::max(shared.last_first_token, now);
      }
      result.tokens[i].push_back(token);
      shared.token_times.push_back(now);
    };
    request.on_finish = [&shared](absl::StatusOr<FinishReason> outcome) {
      std::lock_guard<std::mutex> lock(shared.mutex);
      if (!outcome.ok() && shared.status.ok()) shared.status = outcome.status();
      ++shared.finished;
      shared.done.notify_all();
    };
    if (absl::Status submitted = engine.Submit(std::move(request));
        !submitted.ok()) {
      // Those already submitted still finish before `shared` goes away.
      cancel_all(i);
      std::unique_lock<std::mutex> lock(shared.mutex);
      shared.done.wait(lock, [&] { return shared.finished == i; });
      return submitted;
    }
  }
  std::unique_lock<std::mutex> lock(shared.mutex);
  shared.done.wait(lock, [&] {
    return shared.finished == requests.size() || !shared.status.ok();
  });
  if (!shared.status.ok()) {
    lock.unlock();
    cancel_all(requests.size());
    lock.lock();
    shared.done.wait(lock, [&] { return shared.finished == requests.size(); });
    return shared.status;
  }
  Clock::time_point end = shared.last_first_token;
  for (const Clock::time_point& t : shared.token_times) {
    if (t > shared.last_first_token) {
      ++result.decode_tokens;
      end = std::max(end, t);
    }
  }
  result.decode_seconds =
      std::chrono::duration<double>(end - shared.last_first_token).count();
  return result;
}

}  // namespace moe

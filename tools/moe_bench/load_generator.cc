#include "tools/moe_bench/load_generator.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <optional>
#include <random>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace moe {
namespace {

using Clock = std::chrono::steady_clock;

constexpr double kMaxGapSeconds = 1e6;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The measured part of a run: a pool of threads that each run one request at
// a time with the blocking client. Closed loop: `concurrency` threads, each
// taking a new request as soon as its own ends. Open loop: the caller's
// thread queues requests at their arrival times and adds a thread whenever a
// request finds none free (up to the cap), so the pool grows to the peak
// number of requests in flight and no further, however long the run.
class MeasuredPhase {
 public:
  MeasuredPhase(client::Client& client, RequestSource& source,
                const LoadOptions& options, Clock::time_point start)
      : client_(client), source_(source), options_(options), start_(start) {
    // Durations beyond a century are "no limit"; this also keeps the sum
    // below from overflowing the clock.
    if (options.duration > absl::ZeroDuration() &&
        options.duration < absl::Hours(24 * 365 * 100)) {
      end_ = start + std::chrono::duration_cast<Clock::duration>(
                         absl::ToChronoNanoseconds(options.duration));
    }
  }

  void RunClosedLoop() {
    for (int i = 0; i < options_.concurrency; ++i) {
      workers_.emplace_back([this] { ClosedLoopWorker(); });
    }
    JoinWorkers();
  }

  void RunOpenLoop() {
    // Arrivals have their own random stream, so that changing the rate does
    // not change the prompts (and the reverse).
    std::seed_seq seeds{static_cast<uint32_t>(options_.seed),
                        static_cast<uint32_t>(options_.seed >> 32),
                        0x61727269u};
    std::mt19937_64 rng(seeds);
    std::exponential_distribution<double> gap(options_.rate);
    // Arrival times are absolute: a late wake-up sends at once and does not
    // shift the arrivals after it.
    Clock::time_point arrival = start_;
    const size_t cap = static_cast<size_t>(options_.concurrency);
    while (arrival < end_ && !AllIssued()) {
      std::this_thread::sleep_until(arrival);
      {
        absl::MutexLock lock(&mu_);
        ++issued_;
        arrived_.push_back(source_.Next());
        if (arrived_.size() > static_cast<size_t>(free_workers_) &&
            (cap == 0 || workers_.size() < cap)) {
          ++free_workers_;
          workers_.emplace_back([this] { OpenLoopWorker(); });
        }
      }
      // A gap of days means a rate far below what anyone measures; capping
      // it keeps the clock arithmetic from overflowing.
      arrival += std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(std::min(gap(rng), kMaxGapSeconds)));
    }
    {
      absl::MutexLock lock(&mu_);
      arrivals_done_ = true;
    }
    JoinWorkers();
  }

  std::vector<RequestRecord> TakeRecords() {
    absl::MutexLock lock(&mu_);
    return std::move(records_);
  }

 private:
  bool AllIssued() {
    absl::MutexLock lock(&mu_);
    return options_.max_requests > 0 && issued_ >= options_.max_requests;
  }

  bool LimitReached() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return (options_.max_requests > 0 && issued_ >= options_.max_requests) ||
           Clock::now() >= end_;
  }

  bool HasWorkOrDone() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !arrived_.empty() || arrivals_done_;
  }

  std::optional<v1::GenerateRequest> IssueClosedLoop() {
    absl::MutexLock lock(&mu_);
    if (LimitReached()) return std::nullopt;
    ++issued_;
    return source_.Next();
  }

  void ClosedLoopWorker() {
    while (std::optional<v1::GenerateRequest> request = IssueClosedLoop()) {
      Record(TimeRequest(client_, *request, options_.request_timeout));
    }
  }

  void OpenLoopWorker() {
    while (true) {
      v1::GenerateRequest request;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(this, &MeasuredPhase::HasWorkOrDone));
        if (arrived_.empty()) return;  // no more arrivals
        request = std::move(arrived_.front());
        arrived_.pop_front();
        --free_workers_;
      }
      RequestRecord record =
          TimeRequest(client_, request, options_.request_timeout);
      absl::MutexLock lock(&mu_);
      records_.push_back(std::move(record));
      ++free_workers_;
    }
  }

  void Record(RequestRecord record) {
    absl::MutexLock lock(&mu_);
    records_.push_back(std::move(record));
  }

  void JoinWorkers() {
    for (std::thread& worker : workers_) worker.join();
    workers_.clear();
  }

  client::Client& client_;
  RequestSource& source_;
  const LoadOptions& options_;
  const Clock::time_point start_;
  Clock::time_point end_ = Clock::time_point::max();  // issue nothing after

  absl::Mutex mu_;
  int64_t issued_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<v1::GenerateRequest> arrived_ ABSL_GUARDED_BY(mu_);  // not sent
  int free_workers_ ABSL_GUARDED_BY(mu_) = 0;  // threads not in a request
  bool arrivals_done_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<RequestRecord> records_ ABSL_GUARDED_BY(mu_);
  // Only the thread that runs the phase adds to it (under mu_ in the open
  // loop, where free_workers_ must agree with it) and joins it.
  std::vector<std::thread> workers_;
};

bool IsFinite(absl::Duration duration) {
  return duration != absl::InfiniteDuration() &&
         duration != -absl::InfiniteDuration();
}

}  // namespace

absl::Status ValidateLoadOptions(const LoadOptions& options) {
  if (!std::isfinite(options.rate) || options.rate < 0) {
    return absl::InvalidArgumentError(
        "--rate must be a number of requests per second >= 0 (0: closed "
        "loop)");
  }
  if (options.concurrency < 0) {
    return absl::InvalidArgumentError("--concurrency must be >= 0");
  }
  if (options.rate == 0 && options.concurrency < 1) {
    return absl::InvalidArgumentError(
        "--concurrency must be >= 1 without --rate");
  }
  if (options.max_requests < 0) {
    return absl::InvalidArgumentError("--requests must be >= 0");
  }
  if (options.duration < absl::ZeroDuration() || !IsFinite(options.duration)) {
    return absl::InvalidArgumentError(
        "--duration must be a finite number of seconds >= 0");
  }
  if (options.max_requests == 0 && options.duration == absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "give --requests N and/or --duration SECONDS: when to stop");
  }
  if (options.warmup < 0) {
    return absl::InvalidArgumentError("--warmup must be >= 0");
  }
  if (options.request_timeout <= absl::ZeroDuration() ||
      !IsFinite(options.request_timeout)) {
    return absl::InvalidArgumentError(
        "--request-timeout must be a finite number of seconds > 0");
  }
  return absl::OkStatus();
}

LoadResult RunLoad(client::Client& client, RequestSource& source,
                   const LoadOptions& options) {
  LoadResult result;
  for (int64_t i = 0; i < options.warmup; ++i) {
    if (!TimeRequest(client, source.Next(), options.request_timeout)
             .status.ok()) {
      ++result.warmup_failed;
    }
  }
  const Clock::time_point start = Clock::now();
  MeasuredPhase phase(client, source, options, start);
  if (options.rate > 0) {
    phase.RunOpenLoop();
  } else {
    phase.RunClosedLoop();
  }
  result.wall_seconds = SecondsSince(start);
  result.measured = phase.TakeRecords();
  return result;
}

}  // namespace moe

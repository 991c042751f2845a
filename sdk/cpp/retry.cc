#include "sdk/cpp/retry.h"

#include <algorithm>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace moe::client {

absl::Status CallWithRetries(const RetryOptions& options, absl::Time deadline,
                             const CancelToken* cancel,
                             absl::FunctionRef<AttemptResult()> attempt) {
  absl::BitGen random;
  absl::Duration backoff = options.initial_backoff;
  for (int attempts = 1;; ++attempts) {
    if (cancel != nullptr && cancel->cancelled()) {
      return absl::CancelledError("cancelled by the caller");
    }
    const AttemptResult result = attempt();
    if (result.status.code() != absl::StatusCode::kUnavailable ||
        result.delivered_output) {
      return result.status;
    }
    // Jitter keeps clients that failed together from retrying together.
    const absl::Time wake =
        absl::Now() + backoff * absl::Uniform(random, 0.8, 1.2);
    if (attempts > options.max_retries || wake >= deadline) {
      return absl::UnavailableError(
          absl::StrCat(result.status.message(), " (after ", attempts,
                       attempts == 1 ? " attempt)" : " attempts)"));
    }
    if (cancel == nullptr) {
      absl::SleepFor(wake - absl::Now());
    } else if (!cancel->SleepUntil(wake)) {
      return absl::CancelledError("cancelled by the caller");
    }
    backoff = std::min(backoff * 2, options.max_backoff);
  }
}

}  // namespace moe::client

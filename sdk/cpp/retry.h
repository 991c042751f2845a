#ifndef MOE_SDK_CPP_RETRY_H_
#define MOE_SDK_CPP_RETRY_H_

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "sdk/cpp/cancel_token.h"

namespace moe::client {

// Retries of calls that fail with UNAVAILABLE (no gateway yet, a restart, a
// router or expert worker that failed), with exponential backoff.
struct RetryOptions {
  int max_retries = 3;  // attempts after the first; 0: none
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(2);
};

struct AttemptResult {
  absl::Status status;
  // The attempt handed output to the caller: retrying would repeat it.
  bool delivered_output = false;
};

// Runs `attempt` until it succeeds, fails with another code, fails after
// delivering output, or the retries run out; the backoff before a retry
// never passes `deadline`. `cancel` (may be null) ends the waiting with
// CANCELLED. Returns the last attempt's status; an UNAVAILABLE one given up
// on says after how many attempts.
absl::Status CallWithRetries(const RetryOptions& options, absl::Time deadline,
                             const CancelToken* cancel,
                             absl::FunctionRef<AttemptResult()> attempt);

}  // namespace moe::client

#endif  // MOE_SDK_CPP_RETRY_H_

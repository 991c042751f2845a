#ifndef MOE_TOOLS_MOE_BENCH_TIMED_REQUEST_H_
#define MOE_TOOLS_MOE_BENCH_TIMED_REQUEST_H_

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "moe/v1/inference.pb.h"
#include "sdk/cpp/client.h"

namespace moe {

// The timings of one Generate call, in seconds, measured on a steady clock.
struct RequestRecord {
  absl::Status status;
  int64_t prompt_tokens = 0;  // from the final usage; 0 when it failed
  int64_t output_tokens = 0;  // completion tokens of the final usage, or
                              // those streamed before it failed
  // From sending the request to the first response holding a token; unset
  // when no token came.
  std::optional<double> time_to_first_token;
  // Inter-token latencies: for each response after the first one holding
  // tokens, the time since the previous such response divided by its k
  // tokens, k times. The tokens that come with the first token are counted
  // in time_to_first_token only: they have no previous response to measure
  // from.
  std::vector<double> inter_token;
  double end_to_end = 0;  // sending to the end of the call
  // Each response holding tokens: when it came (Unix time, seconds, so it
  // can be set beside events logged by other processes) and its tokens.
  std::vector<std::pair<double, int>> arrivals;
};

// Sends `request` and waits for its end, within `timeout`. Use a client
// without retries: a retried call would hide the failure and count the
// retries' backoff as latency.
RequestRecord TimeRequest(client::Client& client,
                          const v1::GenerateRequest& request,
                          absl::Duration timeout);

}  // namespace moe

#endif  // MOE_TOOLS_MOE_BENCH_TIMED_REQUEST_H_

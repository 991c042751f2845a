#ifndef MOE_TOOLS_MOE_BENCH_LOAD_GENERATOR_H_
#define MOE_TOOLS_MOE_BENCH_LOAD_GENERATOR_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "sdk/cpp/client.h"
#include "tools/moe_bench/request_source.h"
#include "tools/moe_bench/timed_request.h"

namespace moe {

// How moe-bench sends its requests.
//
// Closed loop (rate == 0): `concurrency` requests are always in flight; each
// one that ends is replaced at once. Open loop (rate > 0): requests arrive as
// a Poisson process of `rate` per second (exponential gaps drawn from the
// seed), whether or not earlier ones have ended; with concurrency > 0 at most
// that many are in flight and arrivals beyond it wait, in order, for a free
// slot. Latencies are measured from when a request is sent, not from its
// arrival, so they show the server, not the cap's queue.
struct LoadOptions {
  int concurrency = 1;  // closed loop: in flight; open loop: cap, 0 for none
  double rate = 0;      // requests per second; 0: closed loop
  // Stop issuing measured requests after this many (0: no limit) or once
  // this much time has passed since the measurement began (zero: no limit),
  // whichever comes first; requests in flight are then waited for.
  int64_t max_requests = 0;
  absl::Duration duration = absl::ZeroDuration();
  // Requests sent one at a time before the measurement (which starts after
  // the last of them ended) and left out of it: the first request pays for
  // the connection and the server's cold paths.
  int64_t warmup = 0;
  uint64_t seed = 0;  // Poisson arrivals (prompts have their own stream)
  absl::Duration request_timeout = absl::Seconds(300);
};

// Checks the options as flags, naming the flag at fault.
absl::Status ValidateLoadOptions(const LoadOptions& options);

struct LoadResult {
  std::vector<RequestRecord> measured;  // in the order they ended
  int64_t warmup_failed = 0;
  // From the start of the measurement to the end of its last request.
  double wall_seconds = 0;
};

// Sends the warmup requests, then the measured ones, with requests from
// `source`. `client` should not retry (see TimeRequest).
LoadResult RunLoad(client::Client& client, RequestSource& source,
                   const LoadOptions& options);

}  // namespace moe

#endif  // MOE_TOOLS_MOE_BENCH_LOAD_GENERATOR_H_

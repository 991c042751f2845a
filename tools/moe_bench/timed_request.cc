#include "tools/moe_bench/timed_request.h"

#include <chrono>

#include "absl/time/clock.h"

namespace moe {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsBetween(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

}  // namespace

RequestRecord TimeRequest(client::Client& client,
                          const v1::GenerateRequest& request,
                          absl::Duration timeout) {
  RequestRecord record;
  client::CallOptions call;
  call.timeout = timeout;
  std::optional<Clock::time_point> last_token;
  const Clock::time_point sent = Clock::now();
  const auto on_chunk = [&](const v1::GenerateResponse& response) {
    const int tokens = response.token_ids_size();
    if (tokens == 0) return true;  // e.g. a last response with usage only
    const Clock::time_point now = Clock::now();
    if (!last_token.has_value()) {
      record.time_to_first_token = SecondsBetween(sent, now);
    } else {
      record.inter_token.insert(record.inter_token.end(), tokens,
                                SecondsBetween(*last_token, now) / tokens);
    }
    last_token = now;
    record.arrivals.emplace_back(absl::ToUnixMicros(absl::Now()) / 1e6, tokens);
    record.output_tokens += tokens;
    return true;
  };
  const absl::StatusOr<client::GenerateResult> result =
      client.Generate(request, on_chunk, call);
  record.end_to_end = SecondsBetween(sent, Clock::now());
  if (!result.ok()) {
    record.status = result.status();
    return record;
  }
  record.prompt_tokens = result->usage.prompt_tokens();
  record.output_tokens = result->usage.completion_tokens();
  return record;
}

}  // namespace moe

#ifndef MOE_ROUTER_SERVICE_BATCH_GENERATE_H_
#define MOE_ROUTER_SERVICE_BATCH_GENERATE_H_

#include <vector>

#include "absl/status/statusor.h"
#include "router_service/batch_engine.h"

namespace moe {

struct BatchGenerateResult {
  std::vector<std::vector<int32_t>> tokens;  // per request, in order
  // From the last first token to the end: the steps where every sequence
  // decodes one token at a time.
  double decode_seconds = 0;
  int64_t decode_tokens = 0;  // tokens sampled in that time
};

// Runs `requests` through the engine together and waits for all of them;
// the first error ends it.
absl::StatusOr<BatchGenerateResult> GenerateBatch(
    BatchEngine& engine, const std::vector<GenerationRequest>& requests);

}  // namespace moe

#endif  // MOE_ROUTER_SERVICE_BATCH_GENERATE_H_

#ifndef MOE_ROUTER_SERVICE_ENGINE_FLAGS_H_
#define MOE_ROUTER_SERVICE_ENGINE_FLAGS_H_

#include "absl/status/statusor.h"
#include "router_service/batch_engine.h"
#include "router_service/model_runner.h"

namespace moe {

// --kv-cache-mb, --kv-block-size and --micro-batches, checked.
absl::StatusOr<ModelRunnerOptions> ModelRunnerOptionsFromFlags();

// --max-step-tokens into `options` (whose max_batch is set), checked.
absl::Status ApplyEngineFlags(EngineOptions& options);

}  // namespace moe

#endif  // MOE_ROUTER_SERVICE_ENGINE_FLAGS_H_

#ifndef MOE_ROUTER_SERVICE_ENGINE_FLAGS_H_
#define MOE_ROUTER_SERVICE_ENGINE_FLAGS_H_

#include <memory>

#include "absl/status/statusor.h"
#include "core/model/model_weights.h"
#include "core/util/thread_pool.h"
#include "engine/expert_dispatch.h"
#include "engine/model_runner.h"
#include "router_service/batch_engine.h"

namespace moe {

// The forward pass the flags ask for: on the CPU, or on the GPU
// --router-device names, with --kv-cache-mb, --kv-block-size and
// --micro-batches (checked).
absl::StatusOr<std::unique_ptr<ModelRunner>> ModelRunnerFromFlags(
    const ModelWeights& weights, ExpertDispatch& experts, ThreadPool& pool);

// --max-step-tokens into `options` (whose max_batch is set), checked.
absl::Status ApplyEngineFlags(EngineOptions& options);

}  // namespace moe

#endif  // MOE_ROUTER_SERVICE_ENGINE_FLAGS_H_

#ifndef MOE_ENGINE_GPU_MODEL_RUNNER_H_
#define MOE_ENGINE_GPU_MODEL_RUNNER_H_

#include <memory>

#include "absl/status/statusor.h"
#include "core/model/model_weights.h"
#include "engine/expert_dispatch.h"
#include "engine/model_runner.h"

namespace moe {

// The forward pass on the router's GPU `device`: the dense weights (as
// BF16), the paged KV cache (BF16) and the hidden rows live in its memory;
// each layer's attention and gating run there (cuda::RouterLayer), the rows
// routed to experts go to the host and through `experts`, and their sums come
// back; the final norm and the LM head run there and only the wanted logits
// come back for sampling. With options.micro_batches 2 the steps are split
// in two that take turns, as on the CPU: one's attention runs while the
// other's rows are at the experts. The KV cache holds as many BF16 blocks
// as options.kv_cache's budget gives (twice the CPU runner's float32 ones);
// the base's kv_pool() only accounts for them, with no host memory.
//
// FAILED_PRECONDITION in a build without CUDA, or without that GPU;
// INVALID_ARGUMENT for a model shape the GPU layer cannot run;
// RESOURCE_EXHAUSTED when the weights, cache and the scratch of passes of
// options.max_step_tokens rows do not fit in its memory. A pass that runs
// out of device memory fails its steps with RESOURCE_EXHAUSTED.
absl::StatusOr<std::unique_ptr<ModelRunner>> NewGpuModelRunner(
    const ModelWeights& weights, ExpertDispatch& experts, int device,
    const ModelRunnerOptions& options = {});

}  // namespace moe

#endif  // MOE_ENGINE_GPU_MODEL_RUNNER_H_

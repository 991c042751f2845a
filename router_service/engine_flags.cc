#include "router_service/engine_flags.h"

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"
#include "engine/cpu_model_runner.h"
#include "engine/gpu_model_runner.h"

ABSL_FLAG(int64_t, kv_cache_mb, 1024,
          "memory of the paged KV cache (float32 keys and values on the CPU, "
          "BF16 with --router-device), MiB");
ABSL_FLAG(int, kv_block_size, 16, "positions per KV cache block");
ABSL_FLAG(int, micro_batches, 1,
          "1, or 2: split each step into two micro-batches whose attention "
          "and expert calls overlap (for experts on workers)");
ABSL_FLAG(int, router_device, -1,
          "GPU to run the forward pass on (attention, KV cache, gating, LM "
          "head; CUDA device index); -1: the CPU");
ABSL_FLAG(int, max_step_tokens, 512,
          "tokens one engine step computes: decodes first, then prompt "
          "chunks; at least the batch size");

namespace moe {

namespace {

absl::StatusOr<ModelRunnerOptions> ModelRunnerOptionsFromFlags() {
  ModelRunnerOptions options;
  const int64_t mb = absl::GetFlag(FLAGS_kv_cache_mb);
  options.kv_cache.block_size = absl::GetFlag(FLAGS_kv_block_size);
  options.kv_cache.memory_bytes = mb << 20;
  options.micro_batches = absl::GetFlag(FLAGS_micro_batches);
  options.max_step_tokens = absl::GetFlag(FLAGS_max_step_tokens);
  if (mb < 1) return absl::InvalidArgumentError("--kv-cache-mb must be >= 1");
  if (options.kv_cache.block_size < 1 || options.kv_cache.block_size > 4096) {
    return absl::InvalidArgumentError("--kv-block-size must be in [1, 4096]");
  }
  if (options.micro_batches != 1 && options.micro_batches != 2) {
    return absl::InvalidArgumentError("--micro-batches must be 1 or 2");
  }
  return options;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ModelRunner>> ModelRunnerFromFlags(
    const ModelWeights& weights, ExpertDispatch& experts, ThreadPool& pool) {
  MOE_ASSIGN_OR_RETURN(const ModelRunnerOptions options,
                       ModelRunnerOptionsFromFlags());
  const int device = absl::GetFlag(FLAGS_router_device);
  if (device < 0) {
    return std::make_unique<CpuModelRunner>(weights, experts, pool, options);
  }
  return NewGpuModelRunner(weights, experts, device, options);
}

absl::Status ApplyEngineFlags(EngineOptions& options) {
  options.max_step_tokens = absl::GetFlag(FLAGS_max_step_tokens);
  if (options.max_step_tokens < options.max_batch) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max-step-tokens must be at least the batch size (",
                     options.max_batch, ")"));
  }
  return absl::OkStatus();
}

}  // namespace moe

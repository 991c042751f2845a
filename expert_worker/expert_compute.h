#ifndef MOE_EXPERT_WORKER_EXPERT_COMPUTE_H_
#define MOE_EXPERT_WORKER_EXPERT_COMPUTE_H_

#include <cstdint>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/kernels/expert_ffn.h"
#include "core/model/model_weights.h"
#include "core/util/thread_pool.h"

namespace moe {

using ExpertKey = std::pair<int, int>;  // (layer, expert)

// The memory of the device that computes the experts (zero for the CPU,
// whose budget is the plan's).
struct DeviceMemoryReport {
  int64_t free_bytes = 0;
  int64_t total_bytes = 0;
};

// Where a worker computes its experts: the CPU, or one GPU that holds them in
// its own memory.
class ExpertCompute {
 public:
  virtual ~ExpertCompute() = default;

  // "cpu", or "cuda:N" and the GPU's name.
  virtual std::string device() const = 0;
  virtual DeviceMemoryReport Memory() const = 0;

  // Takes on `held`, the experts of `weights` the worker now holds (a GPU
  // copies new ones to its memory and frees dropped ones). Fails, changing
  // nothing, with RESOURCE_EXHAUSTED saying what is missing when they do not
  // fit.
  virtual absl::Status Sync(const ModelWeights& weights,
                            const std::set<ExpertKey>& held) = 0;

  // ComputeExperts' contract for the experts of layer `layer`.
  virtual absl::Status Compute(const ModelWeights& weights, int layer,
                               const float* x, int64_t n,
                               std::span<const ExpertAssignment> assignments,
                               float* out) = 0;
};

// The CPU, with `pool`'s threads.
std::unique_ptr<ExpertCompute> NewCpuExpertCompute(ThreadPool& pool);

// GPU `device` (its memory holding the experts) for a model of `config`'s
// shape: FP8 products where the GPU has them and `allow_fp8`, else BF16
// (weights dequantized, activations unquantized: closest to the CPU's
// results). FAILED_PRECONDITION naming the flag when this build has no CUDA
// or the machine has no such GPU.
absl::StatusOr<std::unique_ptr<ExpertCompute>> NewGpuExpertCompute(
    int device, const ModelConfig& config, bool allow_fp8);

}  // namespace moe

#endif  // MOE_EXPERT_WORKER_EXPERT_COMPUTE_H_

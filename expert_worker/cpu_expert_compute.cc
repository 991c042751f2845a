#include "expert_worker/expert_compute.h"

namespace moe {
namespace {

class CpuExpertCompute : public ExpertCompute {
 public:
  explicit CpuExpertCompute(ThreadPool& pool) : pool_(pool) {}

  std::string device() const override { return "cpu"; }
  DeviceMemoryReport Memory() const override { return {}; }

  // The experts stay in the mapped checkpoint.
  absl::Status Sync(const ModelWeights&, const std::set<ExpertKey>&) override {
    return absl::OkStatus();
  }

  absl::Status Compute(const ModelWeights& weights, int layer, const float* x,
                       int64_t n, std::span<const ExpertAssignment> assignments,
                       float* out) override {
    return ComputeExperts(weights.layers()[layer], layer, x, n,
                          weights.config().hidden_size, assignments, out,
                          pool_);
  }

 private:
  ThreadPool& pool_;
};

}  // namespace

std::unique_ptr<ExpertCompute> NewCpuExpertCompute(ThreadPool& pool) {
  return std::make_unique<CpuExpertCompute>(pool);
}

}  // namespace moe

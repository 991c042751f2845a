#ifndef MOE_EXPERT_WORKER_EXPERT_STORE_H_
#define MOE_EXPERT_WORKER_EXPERT_STORE_H_

#include <atomic>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/model_weights.h"
#include "expert_worker/expert_compute.h"

namespace moe {

// The experts one worker holds, read from its checkpoint: only those, so the
// worker's memory follows its share of the plan. Loading or unloading builds
// a new set, hands it to the compute (a GPU copies it to its memory) and
// swaps it in; a set the compute cannot take is refused and the old one
// stays. A compute that started keeps the set it took.
class ExpertStore {
 public:
  // `memory_budget_bytes` bounds the weight bytes held (0: no bound): a set
  // above it is refused with RESOURCE_EXHAUSTED before any of it is read.
  // `placement_version` is that of the plan `experts` come from (0: none).
  static absl::StatusOr<std::unique_ptr<ExpertStore>> Open(
      const std::string& model_dir, const std::set<ExpertKey>& experts,
      ExpertCompute& compute, int64_t memory_budget_bytes = 0,
      int placement_version = 0);

  const ModelConfig& config() const { return config_; }
  // Where the experts are computed.
  ExpertCompute& compute() const { return compute_; }

  // The current set; stays valid while the caller holds it.
  std::shared_ptr<const ModelWeights> Current() const;

  // Adds or drops experts (INVALID_ARGUMENT for one outside the model).
  // A Load for a plan version (not 0) makes it the version served once the
  // experts are in.
  absl::Status Load(const std::vector<ExpertKey>& experts,
                    int placement_version = 0);
  absl::Status Unload(const std::vector<ExpertKey>& experts);

  std::vector<ExpertKey> Held() const;
  // Weight bytes of the experts held (FP8 weights count one byte each).
  int64_t BytesHeld() const;
  // The version of the last plan loaded (0: none).
  int placement_version() const { return placement_version_.load(); }

 private:
  ExpertStore(std::string model_dir, ModelConfig config, ExpertCompute& compute,
              int64_t memory_budget_bytes)
      : model_dir_(std::move(model_dir)),
        config_(std::move(config)),
        compute_(compute),
        memory_budget_bytes_(memory_budget_bytes) {}

  absl::Status CheckKeys(const std::vector<ExpertKey>& experts) const;
  // Maps `experts` and reads them once, so they are resident before the
  // first request rather than faulted in during it.
  absl::Status Replace(std::set<ExpertKey> experts);

  const std::string model_dir_;
  const ModelConfig config_;
  ExpertCompute& compute_;
  const int64_t memory_budget_bytes_;
  mutable std::mutex mutex_;
  std::mutex update_mutex_;  // one Load/Unload at a time
  std::set<ExpertKey> held_;
  std::shared_ptr<const ModelWeights> weights_;
  std::atomic<int> placement_version_{0};
};

}  // namespace moe

#endif  // MOE_EXPERT_WORKER_EXPERT_STORE_H_

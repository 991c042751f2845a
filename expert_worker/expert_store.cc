#include "expert_worker/expert_store.h"

#include "absl/strings/str_cat.h"
#include "core/model/dtype.h"
#include "core/util/status_macros.h"

namespace moe {
namespace {

int64_t WeightBytes(const LinearWeight& w) {
  return w.rows * w.cols * static_cast<int64_t>(DTypeSize(w.dtype));
}

// Reads one byte per page so the pages are resident.
void Touch(const LinearWeight& w) {
  constexpr int64_t kPage = 4096;
  const int64_t bytes = WeightBytes(w);
  volatile uint8_t sink = 0;
  for (int64_t i = 0; i < bytes; i += kPage) sink = sink + w.data[i];
}

}  // namespace

absl::StatusOr<std::unique_ptr<ExpertStore>> ExpertStore::Open(
    const std::string& model_dir, const std::set<ExpertKey>& experts,
    ExpertCompute& compute, int64_t memory_budget_bytes,
    int placement_version) {
  MOE_ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(model_dir));
  auto store = std::unique_ptr<ExpertStore>(
      new ExpertStore(model_dir, config, compute, memory_budget_bytes));
  MOE_RETURN_IF_ERROR(
      store->CheckKeys(std::vector<ExpertKey>(experts.begin(), experts.end())));
  MOE_RETURN_IF_ERROR(store->Replace(experts));
  store->placement_version_.store(placement_version);
  return store;
}

std::shared_ptr<const ModelWeights> ExpertStore::Current() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return weights_;
}

absl::Status ExpertStore::CheckKeys(
    const std::vector<ExpertKey>& experts) const {
  for (const auto& [layer, expert] : experts) {
    if (layer < 0 || layer >= config_.num_layers || expert < 0 ||
        expert >= config_.num_experts) {
      return absl::InvalidArgumentError(
          absl::StrCat("expert (layer ", layer, ", expert ", expert,
                       ") is outside the model's ", config_.num_layers,
                       " layers x ", config_.num_experts, " experts"));
    }
  }
  return absl::OkStatus();
}

absl::Status ExpertStore::Load(const std::vector<ExpertKey>& experts,
                               int placement_version) {
  MOE_RETURN_IF_ERROR(CheckKeys(experts));
  std::lock_guard<std::mutex> update(update_mutex_);
  std::set<ExpertKey> next = held_;
  next.insert(experts.begin(), experts.end());
  MOE_RETURN_IF_ERROR(Replace(std::move(next)));
  if (placement_version != 0) placement_version_.store(placement_version);
  return absl::OkStatus();
}

absl::Status ExpertStore::Unload(const std::vector<ExpertKey>& experts) {
  MOE_RETURN_IF_ERROR(CheckKeys(experts));
  std::lock_guard<std::mutex> update(update_mutex_);
  std::set<ExpertKey> next = held_;
  for (const ExpertKey& key : experts) next.erase(key);
  return Replace(std::move(next));
}

absl::Status ExpertStore::Replace(std::set<ExpertKey> experts) {
  WeightSelection selection;
  selection.dense_parts = false;
  selection.expert_filter = [&experts](int layer, int expert) {
    return experts.count({layer, expert}) > 0;
  };
  MOE_ASSIGN_OR_RETURN(std::shared_ptr<const ModelWeights> weights,
                       ModelWeights::Load(model_dir_, selection));
  // Mapped, not read yet: a set over the budget costs no memory.
  int64_t bytes = 0;
  for (const auto& [layer, expert] : experts) {
    const ExpertWeights& w = weights->layers()[layer].experts[expert];
    bytes += WeightBytes(w.w1) + WeightBytes(w.w3) + WeightBytes(w.w2);
  }
  if (memory_budget_bytes_ > 0 && bytes > memory_budget_bytes_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        experts.size(), " experts hold ", bytes,
        " bytes of weights, over this worker's budget of ",
        memory_budget_bytes_, " bytes by ", bytes - memory_budget_bytes_));
  }
  for (const auto& [layer, expert] : experts) {
    const ExpertWeights& w = weights->layers()[layer].experts[expert];
    Touch(w.w1);
    Touch(w.w3);
    Touch(w.w2);
  }
  MOE_RETURN_IF_ERROR(compute_.Sync(*weights, experts));
  std::lock_guard<std::mutex> lock(mutex_);
  held_ = std::move(experts);
  weights_ = std::move(weights);
  return absl::OkStatus();
}

std::vector<ExpertKey> ExpertStore::Held() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return std::vector<ExpertKey>(held_.begin(), held_.end());
}

int64_t ExpertStore::BytesHeld() const {
  std::shared_ptr<const ModelWeights> weights = Current();
  int64_t bytes = 0;
  for (const LayerWeights& layer : weights->layers()) {
    for (const ExpertWeights& w : layer.experts) {
      if (w.loaded)
        bytes += WeightBytes(w.w1) + WeightBytes(w.w3) + WeightBytes(w.w2);
    }
  }
  return bytes;
}

}  // namespace moe

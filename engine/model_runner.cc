#include "engine/model_runner.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace moe {

ModelRunner::ModelRunner(const ModelConfig& config,
                         const ModelRunnerOptions& options,
                         KvStorage kv_storage)
    : config_(config),
      options_(options),
      kv_pool_(config.num_layers,
               static_cast<int64_t>(config.num_kv_heads) * config.head_dim,
               options.kv_cache, kv_storage),
      routed_counts_(static_cast<size_t>(config.num_layers) *
                     config.num_experts) {}

double ModelRunner::MicrosSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::micro>(
             std::chrono::steady_clock::now() - start)
      .count();
}

absl::StatusOr<std::vector<float>> ModelRunner::Forward(
    std::span<const int32_t> tokens, SequenceKvCache& cache, LogitsFor which) {
  const SequenceStep step[] = {{tokens, &cache, which}};
  return std::move(ForwardBatch(step)[0]);
}

absl::Status ModelRunner::CheckStep(const SequenceStep& step) const {
  const ModelConfig& c = config();
  const int64_t n = static_cast<int64_t>(step.tokens.size());
  const int64_t start = step.cache->length();
  if (n == 0) return absl::InvalidArgumentError("no tokens to run");
  if (start + n > c.max_position_embeddings) {
    return absl::OutOfRangeError(absl::StrCat(
        "sequence of ", start + n, " tokens exceeds the context length ",
        c.max_position_embeddings));
  }
  for (int64_t i = 0; i < n; ++i) {
    if (step.tokens[i] < 0 || step.tokens[i] >= c.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", step.tokens[i], " at index ", i,
                       " is outside [0, ", c.vocab_size, ")"));
    }
  }
  return step.cache->Reserve(start + n);
}

std::vector<std::vector<size_t>> ModelRunner::CheckAndSplit(
    std::span<const SequenceStep> steps,
    std::vector<absl::StatusOr<std::vector<float>>>& results) const {
  const int parts = options_.micro_batches;
  std::vector<size_t> valid;
  int64_t total_rows = 0;
  for (size_t s = 0; s < steps.size(); ++s) {
    if (absl::Status status = CheckStep(steps[s]); !status.ok()) {
      results[s] = status;
    } else {
      valid.push_back(s);
      total_rows += static_cast<int64_t>(steps[s].tokens.size());
    }
  }
  std::vector<std::vector<size_t>> groups(
      std::max(1, std::min(parts, static_cast<int>(valid.size()))));
  int64_t rows_so_far = 0;
  for (size_t s : valid) {
    // The next micro-batch starts once this one has its share of the rows.
    const size_t part = std::min<size_t>(
        groups.size() - 1, rows_so_far * groups.size() / total_rows);
    groups[part].push_back(s);
    rows_so_far += static_cast<int64_t>(steps[s].tokens.size());
  }
  std::erase_if(groups, [](const auto& group) { return group.empty(); });
  return groups;
}

}  // namespace moe

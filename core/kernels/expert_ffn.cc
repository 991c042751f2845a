#include "core/kernels/expert_ffn.h"

#include <algorithm>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/kernels/cpu_ops.h"
#include "core/kernels/linear.h"

namespace moe {
namespace {

// The rows one expert computes, gathered into a contiguous batch.
struct ExpertBatch {
  const ExpertWeights* weights;
  std::vector<int32_t> rows;
  std::vector<float> gate_weights;
  std::vector<float> input;   // [rows, hidden]
  std::vector<float> gate;    // [rows, intermediate]: w1 . x, then the SwiGLU
  std::vector<float> up;      // [rows, intermediate]
  std::vector<float> output;  // [rows, hidden]
};

}  // namespace

absl::Status ComputeExperts(const LayerWeights& layer, int layer_index,
                            const float* x, int64_t n, int64_t hidden,
                            std::span<const ExpertAssignment> assignments,
                            float* out, ThreadPool& pool) {
  std::map<int32_t, ExpertBatch> batches;
  for (const ExpertAssignment& a : assignments) {
    if (a.row < 0 || a.row >= n) {
      return absl::InvalidArgumentError(
          absl::StrCat("layer ", layer_index, ": expert assignment row ", a.row,
                       " outside [0, ", n, ")"));
    }
    if (a.expert < 0 ||
        a.expert >= static_cast<int32_t>(layer.experts.size())) {
      return absl::InvalidArgumentError(
          absl::StrCat("layer ", layer_index, ": expert id ", a.expert,
                       " outside [0, ", layer.experts.size(), ")"));
    }
    const ExpertWeights& weights = layer.experts[a.expert];
    if (!weights.loaded) {
      return absl::FailedPreconditionError(
          absl::StrCat("expert ", a.expert, " of layer ", layer_index,
                       " is not loaded here"));
    }
    ExpertBatch& batch = batches[a.expert];
    batch.weights = &weights;
    batch.rows.push_back(a.row);
    batch.gate_weights.push_back(a.weight);
  }
  std::vector<LinearJob> up_jobs;
  for (auto& [expert, batch] : batches) {
    const int64_t rows = static_cast<int64_t>(batch.rows.size());
    const int64_t inter = batch.weights->w1.rows;
    batch.input.resize(rows * hidden);
    for (int64_t i = 0; i < rows; ++i) {
      std::copy_n(x + batch.rows[i] * hidden, hidden,
                  batch.input.data() + i * hidden);
    }
    batch.gate.resize(rows * inter);
    batch.up.resize(rows * inter);
    batch.output.resize(rows * hidden);
    up_jobs.push_back(
        {&batch.weights->w1, batch.input.data(), rows, batch.gate.data()});
    up_jobs.push_back(
        {&batch.weights->w3, batch.input.data(), rows, batch.up.data()});
  }
  RunLinear(up_jobs, pool);
  std::vector<LinearJob> down_jobs;
  for (auto& [expert, batch] : batches) {
    SiluMul(batch.gate.data(), batch.up.data(),
            static_cast<int64_t>(batch.gate.size()));
    down_jobs.push_back({&batch.weights->w2, batch.gate.data(),
                         static_cast<int64_t>(batch.rows.size()),
                         batch.output.data()});
  }
  RunLinear(down_jobs, pool);
  std::fill(out, out + n * hidden, 0.0f);
  for (const auto& [expert, batch] : batches) {
    for (size_t i = 0; i < batch.rows.size(); ++i) {
      float* row = out + batch.rows[i] * hidden;
      const float* result = batch.output.data() + i * hidden;
      for (int64_t k = 0; k < hidden; ++k)
        row[k] += batch.gate_weights[i] * result[k];
    }
  }
  return absl::OkStatus();
}

}  // namespace moe

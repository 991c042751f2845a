// NewGpuExpertCompute: the experts in one GPU's memory (expert_worker/cuda).
#include <cuda_runtime.h>

#include <mutex>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/cuda/device_info.h"
#include "core/util/status_macros.h"
#include "expert_worker/cuda/gpu_experts.h"
#include "expert_worker/expert_compute.h"

namespace moe {
namespace {

constexpr double kMiB = 1 << 20;

// A checkpoint weight as GpuExperts reads it. F16 (which the GPU path does
// not read directly) is decoded to float32 into `decoded`.
cuda::HostWeight HostView(const LinearWeight& weight,
                          std::vector<float>& scales,
                          std::vector<float>& decoded) {
  cuda::HostWeight view{cuda::HostFormat::kFloat32, weight.rows, weight.cols,
                        weight.data, nullptr};
  switch (weight.dtype) {
    case DType::kF8E4M3:
      view.format = cuda::HostFormat::kFp8E4M3;
      break;
    case DType::kBF16:
      view.format = cuda::HostFormat::kBf16;
      break;
    case DType::kF32:
      break;
    case DType::kF16:
      decoded.resize(weight.rows * weight.cols);
      for (int64_t r = 0; r < weight.rows; ++r)
        weight.DecodeRow(r, decoded.data() + r * weight.cols);
      view.data = decoded.data();
      return view;  // DecodeRow applied the scales
  }
  if (!weight.scales.empty()) {
    scales.resize(weight.rows);
    for (int64_t r = 0; r < weight.rows; ++r) scales[r] = weight.RowScale(r);
    view.row_scales = scales.data();
  }
  return view;
}

class GpuExpertCompute : public ExpertCompute {
 public:
  GpuExpertCompute(std::unique_ptr<cuda::GpuExperts> experts, std::string name)
      : experts_(std::move(experts)), name_(std::move(name)) {}

  std::string device() const override {
    return absl::StrCat("cuda:", experts_->device(), " ", name_,
                        experts_->fp8() ? " (fp8)" : " (bf16)");
  }

  DeviceMemoryReport Memory() const override {
    cuda::DeviceMemory memory;
    std::string error;
    if (!cuda::QueryDeviceMemory(experts_->device(), &memory, &error))
      return {};
    return {static_cast<int64_t>(memory.free_bytes),
            static_cast<int64_t>(memory.total_bytes)};
  }

  absl::Status Sync(const ModelWeights& weights,
                    const std::set<ExpertKey>& held) override {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<ExpertKey> added, dropped;
    for (const ExpertKey& key : held)
      if (on_device_.count(key) == 0) added.push_back(key);
    for (const ExpertKey& key : on_device_)
      if (held.count(key) == 0) dropped.push_back(key);
    MOE_RETURN_IF_ERROR(CheckFits(added.size()));
    for (const auto& [layer, expert] : added) {
      const ExpertWeights& w = weights.layers()[layer].experts[expert];
      std::vector<float> scales[3], decoded[3];
      const cuda::HostExpert host{HostView(w.w1, scales[0], decoded[0]),
                                  HostView(w.w3, scales[1], decoded[1]),
                                  HostView(w.w2, scales[2], decoded[2])};
      std::string error;
      if (!experts_->Add(layer, expert, host, &error)) {
        // Leave the device as it was: drop what this call added (none of
        // `added` was there before; removing one not added is a no-op).
        for (const auto& [added_layer, added_expert] : added)
          experts_->Remove(added_layer, added_expert);
        return absl::ResourceExhaustedError(error);
      }
    }
    for (const auto& [layer, expert] : dropped) experts_->Remove(layer, expert);
    on_device_ = held;
    return absl::OkStatus();
  }

  absl::Status Compute(const ModelWeights&, int layer, const float* x,
                       int64_t n, std::span<const ExpertAssignment> assignments,
                       float* out) override {
    static_assert(sizeof(cuda::ExpertRoute) == sizeof(ExpertAssignment));
    std::vector<cuda::ExpertRoute> routes;
    routes.reserve(assignments.size());
    for (const ExpertAssignment& a : assignments)
      routes.push_back({a.row, a.expert, a.weight});
    std::string error;
    if (!experts_->Compute(layer, x, n, routes, out, &error))
      return absl::InternalError(absl::StrCat("GPU expert compute: ", error));
    return absl::OkStatus();
  }

 private:
  // The whole change must fit before any of it is copied, so a plan that
  // does not fit is refused as a whole.
  absl::Status CheckFits(size_t added) const {
    const DeviceMemoryReport memory = Memory();
    const int64_t needed =
        static_cast<int64_t>(added) * experts_->ExpertBytes() +
        cuda::GpuExperts::kReserveBytes;
    if (added == 0 || needed <= memory.free_bytes) return absl::OkStatus();
    return absl::ResourceExhaustedError(absl::StrFormat(
        "%d experts need %.0f MiB on %s (with %.0f MiB kept for compute) "
        "but it has %.0f MiB free of %.0f MiB",
        added, needed / kMiB, device(), cuda::GpuExperts::kReserveBytes / kMiB,
        memory.free_bytes / kMiB, memory.total_bytes / kMiB));
  }

  const std::unique_ptr<cuda::GpuExperts> experts_;
  const std::string name_;
  std::mutex mutex_;
  std::set<ExpertKey> on_device_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ExpertCompute>> NewGpuExpertCompute(
    int device, const ModelConfig& config, bool allow_fp8) {
  const int count = cuda::DeviceCount();
  if (device < 0 || device >= count) {
    return absl::FailedPreconditionError(
        absl::StrCat("--device ", device, ": this machine has ",
                     count == 0 ? "no CUDA device (or no driver)"
                                : absl::StrCat(count, " CUDA devices")));
  }
  cudaDeviceProp properties{};
  cudaGetDeviceProperties(&properties, device);
  std::string error;
  std::unique_ptr<cuda::GpuExperts> experts = cuda::GpuExperts::Create(
      {device, config.hidden_size, config.intermediate_size, allow_fp8},
      &error);
  if (experts == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("--device ", device, ": ", error));
  }
  return std::make_unique<GpuExpertCompute>(std::move(experts),
                                            properties.name);
}

}  // namespace moe

#ifndef MOE_EXPERT_WORKER_CUDA_GPU_EXPERTS_H_
#define MOE_EXPERT_WORKER_CUDA_GPU_EXPERTS_H_

#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/cuda/device_buffer.h"
#include "core/cuda/lt_matmul.h"

namespace moe::cuda {

// How a weight matrix is stored on the host (a checkpoint's tensor).
enum class HostFormat { kFp8E4M3, kBf16, kFloat32 };

// A row-major [rows, cols] weight as read from a checkpoint: real value =
// stored value x row_scales[row] (null: 1; FP8 tensors carry scales).
struct HostWeight {
  HostFormat format = HostFormat::kFloat32;
  int64_t rows = 0;
  int64_t cols = 0;
  const void* data = nullptr;
  const float* row_scales = nullptr;  // [rows] or null
};

// One expert: gate w1 and up w3 [intermediate, hidden], down w2 [hidden,
// intermediate].
struct HostExpert {
  HostWeight w1, w3, w2;
};

// One routed (row, expert) pair, as core's ExpertAssignment.
struct ExpertRoute {
  int32_t row;
  int32_t expert;
  float weight;
};

// The experts of one worker in the memory of one GPU, and their batched
// compute: for each row, the gate-weighted sum of its experts'
// w2 . (silu(w1 . x) * (w3 . x)).
//
// On GPUs with FP8 tensor cores (compute capability 8.9+) weights are kept in
// FP8 E4M3 with a float scale per output channel (checkpoint FP8 bytes are
// used as they are; other weights are quantized per row), activations are
// quantized per token, and both products run as FP8 cuBLASLt matmuls with
// float accumulation; the scales are applied in the element-wise stages.
// Elsewhere (or with allow_fp8 false) weights are dequantized to BF16 and the
// products run in BF16. All calls are serialized.
class GpuExperts {
 public:
  struct Options {
    int device = 0;
    int64_t hidden = 0;
    int64_t intermediate = 0;
    bool allow_fp8 = true;
  };

  static std::unique_ptr<GpuExperts> Create(const Options& options,
                                            std::string* error);
  ~GpuExperts();

  // True when the products run in FP8.
  bool fp8() const { return format_ == GemmInput::kFp8E4M3; }
  int device() const { return options_.device; }
  // Device bytes one expert takes (weights and scales).
  int64_t ExpertBytes() const;
  int64_t BytesHeld() const;

  // Copies an expert to the device (replacing an earlier copy). Fails,
  // saying how much is missing, when it does not fit beside `reserve_bytes`
  // kept free for the compute's scratch space.
  bool Add(int layer, int expert, const HostExpert& weights,
           std::string* error);
  void Remove(int layer, int expert);
  bool Holds(int layer, int expert) const;

  // out[n, hidden] (host) from x[n, hidden] (host) and the routes of layer
  // `layer`; every routed expert must be held. Rows without routes get 0.
  bool Compute(int layer, const float* x, int64_t n,
               std::span<const ExpertRoute> routes, float* out,
               std::string* error);

  // Device memory kept free for scratch space when adding experts.
  static constexpr int64_t kReserveBytes = int64_t{512} << 20;

 private:
  struct DeviceExpert;
  struct Slots;

  GpuExperts(const Options& options, GemmInput format);
  bool UploadMatrix(const HostWeight& weight, uint8_t* data, float* scales,
                    std::string* error) const;
  bool CheckWeight(const HostWeight& weight, int64_t rows, int64_t cols,
                   const char* name, std::string* error) const;
  bool RunProducts(const Slots& slots, std::string* error);

  const Options options_;
  const GemmInput format_;
  mutable std::mutex mutex_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<LtMatmul> matmul_;
  std::map<std::pair<int, int>, std::unique_ptr<DeviceExpert>> experts_;
  // Scratch, grown to the largest batch seen.
  DeviceBuffer x_, meta_, x_q_, x_scales_, g13_, h_q_, h_scales_, y_, out_;
};

}  // namespace moe::cuda

#endif  // MOE_EXPERT_WORKER_CUDA_GPU_EXPERTS_H_

#ifndef MOE_CORE_CUDA_LT_MATMUL_H_
#define MOE_CORE_CUDA_LT_MATMUL_H_

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>

#include "core/cuda/cublaslt_library.h"
#include "core/cuda/device_buffer.h"

namespace moe::cuda {

// The element type of a product's two inputs.
enum class GemmInput {
  kFp8E4M3,  // tensor-core FP8 (compute capability 8.9 and later)
  kBf16,
};

// Products d[n, m] = b[n, k] . a[m, k]^T of row-major matrices through
// cuBLASLt, with float32 output and accumulation: `a` is a weight matrix
// [out, in] as checkpoints store it and `b` a batch of rows. This is the
// "TN" layout FP8 kernels require (column-major a^T, b). Plans (descriptors
// and the chosen algorithm) are kept per shape, so a repeated shape costs
// only the launch. Not thread-safe: one user (and stream) at a time.
class LtMatmul {
 public:
  // Device memory each LtMatmul holds for cuBLASLt: enough for its split-K
  // and stream-K kernels at these shapes.
  static constexpr size_t kWorkspaceBytes = 32 << 20;

  // nullptr + *error on failure; *cuda_status (when given) is then the CUDA
  // error of the workspace's allocation (cudaErrorMemoryAllocation: out of
  // device memory), or cudaSuccess when something else failed.
  static std::unique_ptr<LtMatmul> Create(std::string* error,
                                          cudaError_t* cuda_status = nullptr);
  ~LtMatmul();
  LtMatmul(const LtMatmul&) = delete;
  LtMatmul& operator=(const LtMatmul&) = delete;

  // Enqueues the product on `stream`. FP8 needs k, and the rows' strides,
  // to be multiples of 16 bytes, and 16-byte aligned pointers. Pointers
  // into a buffer (a group's rows) need not be 256-byte aligned: the
  // algorithm is chosen for the alignment they have.
  bool Run(GemmInput input, const void* a, const void* b, float* d, int64_t m,
           int64_t n, int64_t k, cudaStream_t stream, std::string* error);

 private:
  struct Plan;
  // The input type, m, n, k, and the alignments (bytes) of a, b and d.
  using ShapeKey = std::tuple<GemmInput, int64_t, int64_t, int64_t, uint32_t,
                              uint32_t, uint32_t>;

  explicit LtMatmul(const CublasLt& lt);
  Plan* FindPlan(const ShapeKey& key, std::string* error);

  const CublasLt& lt_;
  cublasLtHandle_t handle_ = nullptr;
  DeviceBuffer workspace_;  // stream-ordered: no device-wide wait to free
  std::map<ShapeKey, std::unique_ptr<Plan>> plans_;
};

}  // namespace moe::cuda

#endif  // MOE_CORE_CUDA_LT_MATMUL_H_

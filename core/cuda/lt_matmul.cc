#include "core/cuda/lt_matmul.h"

#include <string>

#include "core/cuda/cuda_check.h"

namespace moe::cuda {
namespace {

// Enough for cuBLASLt's split-K and stream-K kernels at these shapes.
constexpr size_t kWorkspaceBytes = 32 << 20;

std::string CublasText(cublasStatus_t status, const char* what) {
  return std::string(what) + ": " + cublasLtGetStatusName(status) + " (" +
         cublasLtGetStatusString(status) + ")";
}

}  // namespace

struct LtMatmul::Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};

  ~Plan() {
    if (d != nullptr) cublasLtMatrixLayoutDestroy(d);
    if (b != nullptr) cublasLtMatrixLayoutDestroy(b);
    if (a != nullptr) cublasLtMatrixLayoutDestroy(a);
    if (desc != nullptr) cublasLtMatmulDescDestroy(desc);
  }
};

std::unique_ptr<LtMatmul> LtMatmul::Create(std::string* error) {
  std::unique_ptr<LtMatmul> matmul(new LtMatmul());
  const cublasStatus_t status = cublasLtCreate(&matmul->handle_);
  if (status != CUBLAS_STATUS_SUCCESS) {
    *error = CublasText(status, "cublasLtCreate");
    return nullptr;
  }
  const cudaError_t alloc = matmul->workspace_.Reserve(kWorkspaceBytes);
  if (alloc != cudaSuccess) {
    *error = CudaErrorText(alloc, "cuBLASLt workspace");
    return nullptr;
  }
  return matmul;
}

LtMatmul::~LtMatmul() {
  plans_.clear();
  if (handle_ != nullptr) cublasLtDestroy(handle_);
}

LtMatmul::Plan* LtMatmul::FindPlan(const ShapeKey& key, std::string* error) {
  auto found = plans_.find(key);
  if (found != plans_.end()) return found->second.get();
  const auto [input, m, n, k] = key;
  const cudaDataType_t in_type =
      input == GemmInput::kFp8E4M3 ? CUDA_R_8F_E4M3 : CUDA_R_16BF;
  auto plan = std::make_unique<Plan>();
  cublasStatus_t status =
      cublasLtMatmulDescCreate(&plan->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
  const cublasOperation_t transpose = CUBLAS_OP_T, keep = CUBLAS_OP_N;
  if (status == CUBLAS_STATUS_SUCCESS) {
    status = cublasLtMatmulDescSetAttribute(
        plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, &transpose, sizeof(transpose));
  }
  if (status == CUBLAS_STATUS_SUCCESS) {
    status = cublasLtMatmulDescSetAttribute(
        plan->desc, CUBLASLT_MATMUL_DESC_TRANSB, &keep, sizeof(keep));
  }
  // Column-major views: a^T is k x m (ld k), b is k x n (ld k), d is m x n
  // (ld m), the same bytes as the row-major [m, k], [n, k] and [n, m].
  if (status == CUBLAS_STATUS_SUCCESS)
    status = cublasLtMatrixLayoutCreate(&plan->a, in_type, k, m, k);
  if (status == CUBLAS_STATUS_SUCCESS)
    status = cublasLtMatrixLayoutCreate(&plan->b, in_type, k, n, k);
  if (status == CUBLAS_STATUS_SUCCESS)
    status = cublasLtMatrixLayoutCreate(&plan->d, CUDA_R_32F, m, n, m);
  if (status != CUBLAS_STATUS_SUCCESS) {
    *error = CublasText(status, "cuBLASLt descriptors");
    return nullptr;
  }
  cublasLtMatmulPreference_t preference = nullptr;
  status = cublasLtMatmulPreferenceCreate(&preference);
  const size_t workspace = kWorkspaceBytes;
  if (status == CUBLAS_STATUS_SUCCESS) {
    status = cublasLtMatmulPreferenceSetAttribute(
        preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
        sizeof(workspace));
  }
  cublasLtMatmulHeuristicResult_t result{};
  int found_count = 0;
  if (status == CUBLAS_STATUS_SUCCESS) {
    status = cublasLtMatmulAlgoGetHeuristic(
        handle_, plan->desc, plan->a, plan->b, plan->d, plan->d, preference, 1,
        &result, &found_count);
  }
  if (preference != nullptr) cublasLtMatmulPreferenceDestroy(preference);
  if (status != CUBLAS_STATUS_SUCCESS || found_count == 0) {
    *error = status != CUBLAS_STATUS_SUCCESS
                 ? CublasText(status, "cublasLtMatmulAlgoGetHeuristic")
                 : "cuBLASLt has no algorithm for this product (m " +
                       std::to_string(m) + ", n " + std::to_string(n) + ", k " +
                       std::to_string(k) + ")";
    return nullptr;
  }
  plan->algo = result.algo;
  return plans_.emplace(key, std::move(plan)).first->second.get();
}

bool LtMatmul::Run(GemmInput input, const void* a, const void* b, float* d,
                   int64_t m, int64_t n, int64_t k, cudaStream_t stream,
                   std::string* error) {
  if (m <= 0 || n <= 0 || k <= 0) {
    *error = "matmul: empty shape";
    return false;
  }
  Plan* plan = FindPlan({input, m, n, k}, error);
  if (plan == nullptr) return false;
  const float alpha = 1.0f, beta = 0.0f;
  const cublasStatus_t status = cublasLtMatmul(
      handle_, plan->desc, &alpha, a, plan->a, b, plan->b, &beta, d, plan->d, d,
      plan->d, &plan->algo, workspace_.get(), kWorkspaceBytes, stream);
  if (status != CUBLAS_STATUS_SUCCESS) {
    *error = CublasText(status, "cublasLtMatmul");
    return false;
  }
  return true;
}

}  // namespace moe::cuda

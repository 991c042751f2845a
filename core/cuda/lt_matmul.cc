#include "core/cuda/lt_matmul.h"

#include <cstdint>
#include <string>

#include "core/cuda/cublaslt_library.h"
#include "core/cuda/cuda_check.h"

namespace moe::cuda {
namespace {

std::string CublasText(const CublasLt& lt, cublasStatus_t status,
                       const char* what) {
  return std::string(what) + ": " + lt.GetStatusName(status) + " (" +
         lt.GetStatusString(status) + ")";
}

// The largest power of two that divides `pointer`'s address, at most 256
// (cuBLASLt's default assumption, which offset pointers may not meet).
uint32_t Alignment(const void* pointer) {
  const uintptr_t address = reinterpret_cast<uintptr_t>(pointer);
  uint32_t alignment = 256;
  while (alignment > 1 && address % alignment != 0) alignment /= 2;
  return alignment;
}

}  // namespace

struct LtMatmul::Plan {
  explicit Plan(const CublasLt& lt) : lt(lt) {}

  const CublasLt& lt;
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};

  ~Plan() {
    if (d != nullptr) lt.MatrixLayoutDestroy(d);
    if (b != nullptr) lt.MatrixLayoutDestroy(b);
    if (a != nullptr) lt.MatrixLayoutDestroy(a);
    if (desc != nullptr) lt.MatmulDescDestroy(desc);
  }
};

LtMatmul::LtMatmul(const CublasLt& lt) : lt_(lt) {}

std::unique_ptr<LtMatmul> LtMatmul::Create(std::string* error,
                                           cudaError_t* cuda_status) {
  if (cuda_status != nullptr) *cuda_status = cudaSuccess;
  const CublasLt* lt = LoadCublasLt(error);
  if (lt == nullptr) return nullptr;
  std::unique_ptr<LtMatmul> matmul(new LtMatmul(*lt));
  const cublasStatus_t status = lt->Create(&matmul->handle_);
  if (status != CUBLAS_STATUS_SUCCESS) {
    *error = CublasText(*lt, status, "cublasLtCreate");
    return nullptr;
  }
  const cudaError_t alloc = matmul->workspace_.Reserve(kWorkspaceBytes);
  if (alloc != cudaSuccess) {
    *error = CudaErrorText(alloc, "cuBLASLt workspace");
    if (cuda_status != nullptr) *cuda_status = alloc;
    return nullptr;
  }
  return matmul;
}

LtMatmul::~LtMatmul() {
  plans_.clear();
  if (handle_ != nullptr) lt_.Destroy(handle_);
}

LtMatmul::Plan* LtMatmul::FindPlan(const ShapeKey& key, std::string* error) {
  auto found = plans_.find(key);
  if (found != plans_.end()) return found->second.get();
  const auto [input, m, n, k, align_a, align_b, align_d] = key;
  const cudaDataType_t in_type =
      input == GemmInput::kFp8E4M3 ? CUDA_R_8F_E4M3 : CUDA_R_16BF;
  auto plan = std::make_unique<Plan>(lt_);
  // CUBLASLT_MATMUL_DESC_FAST_ACCUM stays off: FP8 products keep Hopper's
  // full-precision accumulation, at a lower rate than the fast mode that
  // many FP8 inference stacks use and report.
  cublasStatus_t status =
      lt_.MatmulDescCreate(&plan->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
  const cublasOperation_t transpose = CUBLAS_OP_T, keep = CUBLAS_OP_N;
  if (status == CUBLAS_STATUS_SUCCESS) {
    status = lt_.MatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA,
                                        &transpose, sizeof(transpose));
  }
  if (status == CUBLAS_STATUS_SUCCESS) {
    status = lt_.MatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSB,
                                        &keep, sizeof(keep));
  }
  // Column-major views: a^T is k x m (ld k), b is k x n (ld k), d is m x n
  // (ld m), the same bytes as the row-major [m, k], [n, k] and [n, m].
  if (status == CUBLAS_STATUS_SUCCESS)
    status = lt_.MatrixLayoutCreate(&plan->a, in_type, k, m, k);
  if (status == CUBLAS_STATUS_SUCCESS)
    status = lt_.MatrixLayoutCreate(&plan->b, in_type, k, n, k);
  if (status == CUBLAS_STATUS_SUCCESS)
    status = lt_.MatrixLayoutCreate(&plan->d, CUDA_R_32F, m, n, m);
  if (status != CUBLAS_STATUS_SUCCESS) {
    *error = CublasText(lt_, status, "cuBLASLt descriptors");
    return nullptr;
  }
  cublasLtMatmulPreference_t preference = nullptr;
  status = lt_.MatmulPreferenceCreate(&preference);
  const size_t workspace = kWorkspaceBytes;
  if (status == CUBLAS_STATUS_SUCCESS) {
    status = lt_.MatmulPreferenceSetAttribute(
        preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
        sizeof(workspace));
  }
  // Only algorithms that work at the pointers' actual alignment (c is d).
  const struct {
    cublasLtMatmulPreferenceAttributes_t attribute;
    uint32_t bytes;
  } alignments[] = {
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, align_a},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, align_b},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, align_d},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, align_d},
  };
  for (const auto& [attribute, bytes] : alignments) {
    if (status == CUBLAS_STATUS_SUCCESS) {
      status = lt_.MatmulPreferenceSetAttribute(preference, attribute, &bytes,
                                                sizeof(bytes));
    }
  }
  cublasLtMatmulHeuristicResult_t result{};
  int found_count = 0;
  if (status == CUBLAS_STATUS_SUCCESS) {
    status = lt_.MatmulAlgoGetHeuristic(handle_, plan->desc, plan->a, plan->b,
                                        plan->d, plan->d, preference, 1,
                                        &result, &found_count);
  }
  if (preference != nullptr) lt_.MatmulPreferenceDestroy(preference);
  if (status != CUBLAS_STATUS_SUCCESS || found_count == 0) {
    *error = status != CUBLAS_STATUS_SUCCESS
                 ? CublasText(lt_, status, "cublasLtMatmulAlgoGetHeuristic")
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
  Plan* plan = FindPlan(
      {input, m, n, k, Alignment(a), Alignment(b), Alignment(d)}, error);
  if (plan == nullptr) return false;
  const float alpha = 1.0f, beta = 0.0f;
  const cublasStatus_t status = lt_.Matmul(
      handle_, plan->desc, &alpha, a, plan->a, b, plan->b, &beta, d, plan->d, d,
      plan->d, &plan->algo, workspace_.get(), kWorkspaceBytes, stream);
  if (status != CUBLAS_STATUS_SUCCESS) {
    *error = CublasText(lt_, status, "cublasLtMatmul");
    return false;
  }
  return true;
}

}  // namespace moe::cuda

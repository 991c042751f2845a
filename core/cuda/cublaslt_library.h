#ifndef MOE_CORE_CUDA_CUBLASLT_LIBRARY_H_
#define MOE_CORE_CUDA_CUBLASLT_LIBRARY_H_

#include <cublasLt.h>

#include <string>

namespace moe::cuda {

// cuBLASLt's entry points, from the library opened with dlopen on first
// use instead of linked. Linked, its 94 KiB of static TLS (libcublasLt.so.13)
// would come out of the stack of every thread of the process, and libraries
// that start threads with small fixed stacks (civetweb's 100 KiB, under the
// Prometheus endpoint) could not start them at all. Opened later, its TLS
// is allocated on use, in the threads that use it.
struct CublasLt {
  decltype(&::cublasLtCreate) Create;
  decltype(&::cublasLtDestroy) Destroy;
  decltype(&::cublasLtGetVersion) GetVersion;
  decltype(&::cublasLtGetStatusName) GetStatusName;
  decltype(&::cublasLtGetStatusString) GetStatusString;
  decltype(&::cublasLtMatmul) Matmul;
  decltype(&::cublasLtMatmulDescCreate) MatmulDescCreate;
  decltype(&::cublasLtMatmulDescDestroy) MatmulDescDestroy;
  decltype(&::cublasLtMatmulDescSetAttribute) MatmulDescSetAttribute;
  decltype(&::cublasLtMatrixLayoutCreate) MatrixLayoutCreate;
  decltype(&::cublasLtMatrixLayoutDestroy) MatrixLayoutDestroy;
  decltype(&::cublasLtMatmulPreferenceCreate) MatmulPreferenceCreate;
  decltype(&::cublasLtMatmulPreferenceDestroy) MatmulPreferenceDestroy;
  decltype(&::cublasLtMatmulPreferenceSetAttribute)
      MatmulPreferenceSetAttribute;
  decltype(&::cublasLtMatmulAlgoGetHeuristic) MatmulAlgoGetHeuristic;
};

// The library the build was made with (by its soname, so LD_LIBRARY_PATH
// finds it), opened once; nullptr and *error (naming the file and dlerror)
// when it cannot be opened or lacks an entry point.
const CublasLt* LoadCublasLt(std::string* error);

}  // namespace moe::cuda

#endif  // MOE_CORE_CUDA_CUBLASLT_LIBRARY_H_

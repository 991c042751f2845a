#include "core/cuda/cublaslt_library.h"

#include <dlfcn.h>

#include <mutex>

namespace moe::cuda {
namespace {

// Sets `entry` to the library's `name`; false (and *error) when missing.
template <typename Function>
bool Resolve(void* library, const char* name, Function& entry,
             std::string* error) {
  entry = reinterpret_cast<Function>(dlsym(library, name));
  if (entry == nullptr) {
    *error = std::string(MOE_CUBLASLT_SONAME) + " has no " + name;
    return false;
  }
  return true;
}

bool Open(CublasLt& lt, std::string* error) {
  void* library = dlopen(MOE_CUBLASLT_SONAME, RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) {
    *error =
        std::string("cannot open ") + MOE_CUBLASLT_SONAME + ": " + dlerror();
    return false;
  }
  return Resolve(library, "cublasLtCreate", lt.Create, error) &&
         Resolve(library, "cublasLtDestroy", lt.Destroy, error) &&
         Resolve(library, "cublasLtGetVersion", lt.GetVersion, error) &&
         Resolve(library, "cublasLtGetStatusName", lt.GetStatusName, error) &&
         Resolve(library, "cublasLtGetStatusString", lt.GetStatusString,
                 error) &&
         Resolve(library, "cublasLtMatmul", lt.Matmul, error) &&
         Resolve(library, "cublasLtMatmulDescCreate", lt.MatmulDescCreate,
                 error) &&
         Resolve(library, "cublasLtMatmulDescDestroy", lt.MatmulDescDestroy,
                 error) &&
         Resolve(library, "cublasLtMatmulDescSetAttribute",
                 lt.MatmulDescSetAttribute, error) &&
         Resolve(library, "cublasLtMatrixLayoutCreate", lt.MatrixLayoutCreate,
                 error) &&
         Resolve(library, "cublasLtMatrixLayoutDestroy", lt.MatrixLayoutDestroy,
                 error) &&
         Resolve(library, "cublasLtMatmulPreferenceCreate",
                 lt.MatmulPreferenceCreate, error) &&
         Resolve(library, "cublasLtMatmulPreferenceDestroy",
                 lt.MatmulPreferenceDestroy, error) &&
         Resolve(library, "cublasLtMatmulPreferenceSetAttribute",
                 lt.MatmulPreferenceSetAttribute, error) &&
         Resolve(library, "cublasLtMatmulAlgoGetHeuristic",
                 lt.MatmulAlgoGetHeuristic, error);
}

}  // namespace

const CublasLt* LoadCublasLt(std::string* error) {
  static CublasLt lt;
  static std::string load_error;
  static const bool loaded = Open(lt, &load_error);
  if (!loaded) {
    *error = load_error;
    return nullptr;
  }
  return &lt;
}

}  // namespace moe::cuda

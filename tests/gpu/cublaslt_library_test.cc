// cuBLASLt opened with dlopen: the library the build was made with opens
// (no GPU needed), its version is the one the headers name, and every entry
// point resolved.
#include "core/cuda/cublaslt_library.h"

#include <gtest/gtest.h>

namespace moe::cuda {
namespace {

TEST(CublasLtLibraryTest, OpensTheLibraryOfTheHeaders) {
  std::string error;
  const CublasLt* lt = LoadCublasLt(&error);
  ASSERT_NE(lt, nullptr) << error;
  // Major and minor as the headers have them (patch releases may differ).
  EXPECT_EQ(lt->GetVersion() / 100, CUBLAS_VERSION / 100);
  EXPECT_STREQ(lt->GetStatusName(CUBLAS_STATUS_SUCCESS),
               "CUBLAS_STATUS_SUCCESS");
  // Opened once.
  EXPECT_EQ(LoadCublasLt(&error), lt);
}

}  // namespace
}  // namespace moe::cuda

#ifndef MOE_RPC_TENSOR_CODEC_H_
#define MOE_RPC_TENSOR_CODEC_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "moe/v1/expert.pb.h"

namespace moe {

// Packs x[rows, cols] into `tensor` as FP32 (exact) or BF16 (rounded to
// nearest even).
void EncodeTensor(const float* x, int64_t rows, int64_t cols,
                  v1::ActivationDType dtype, v1::Tensor* tensor);

// Unpacks `tensor` into out[rows, cols], checking its dtype, that it has
// `expected_cols` columns and that its bytes match its shape. Errors are
// INVALID_ARGUMENT naming `field`.
absl::Status DecodeTensor(const v1::Tensor& tensor, const std::string& field,
                          int64_t expected_cols, std::vector<float>* out);

}  // namespace moe

#endif  // MOE_RPC_TENSOR_CODEC_H_

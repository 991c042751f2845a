#include "rpc/tensor_codec.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/model/float_formats.h"

namespace moe {
namespace {

int64_t BytesPerValue(v1::ActivationDType dtype) {
  switch (dtype) {
    case v1::ACTIVATION_DTYPE_FP32:
      return 4;
    case v1::ACTIVATION_DTYPE_BF16:
      return 2;
    default:
      return 0;
  }
}

}  // namespace

void EncodeTensor(const float* x, int64_t rows, int64_t cols,
                  v1::ActivationDType dtype, v1::Tensor* tensor) {
  const int64_t count = rows * cols;
  tensor->set_dtype(dtype);
  tensor->set_rows(rows);
  tensor->set_cols(cols);
  std::string* data = tensor->mutable_data();
  data->resize(static_cast<size_t>(count * BytesPerValue(dtype)));
  if (dtype == v1::ACTIVATION_DTYPE_FP32) {
    std::memcpy(data->data(), x, static_cast<size_t>(count) * 4);
    return;
  }
  for (int64_t i = 0; i < count; ++i) {
    const uint16_t bits = FloatToBf16(x[i]);
    std::memcpy(data->data() + 2 * i, &bits, 2);
  }
}

absl::Status DecodeTensor(const v1::Tensor& tensor, const std::string& field,
                          int64_t expected_cols, std::vector<float>* out) {
  const int64_t size = BytesPerValue(tensor.dtype());
  if (size == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".dtype: unsupported activation dtype ",
                     static_cast<int>(tensor.dtype())));
  }
  if (tensor.cols() != expected_cols) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".cols: ", tensor.cols(), ", expected ", expected_cols));
  }
  if (tensor.rows() < 0 || tensor.rows() > (int64_t{1} << 31) / expected_cols) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".rows: ", tensor.rows(), " is out of range"));
  }
  const int64_t count = tensor.rows() * tensor.cols();
  if (static_cast<int64_t>(tensor.data().size()) != count * size) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".data: ", tensor.data().size(), " bytes for [",
                     tensor.rows(), ", ", tensor.cols(), "] values of ", size,
                     " bytes, expected ", count * size));
  }
  out->resize(static_cast<size_t>(count));
  const char* bytes = tensor.data().data();
  if (size == 4) {
    std::memcpy(out->data(), bytes, static_cast<size_t>(count) * 4);
    return absl::OkStatus();
  }
  for (int64_t i = 0; i < count; ++i) {
    uint16_t bits;
    std::memcpy(&bits, bytes + 2 * i, 2);
    (*out)[i] = Bf16ToFloat(bits);
  }
  return absl::OkStatus();
}

}  // namespace moe

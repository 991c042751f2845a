#include "core/model/linear_weight.h"

#include "core/model/decode_values.h"

namespace moe {

void LinearWeight::DecodeRow(int64_t row, float* out) const {
  const int64_t row_bytes = cols * static_cast<int64_t>(DTypeSize(dtype));
  DecodeValues(dtype, data + row * row_bytes, cols, out);
  const float scale = RowScale(row);
  if (scale != 1.0f) {
    for (int64_t k = 0; k < cols; ++k) out[k] *= scale;
  }
}

}  // namespace moe

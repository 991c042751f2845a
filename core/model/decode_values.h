#ifndef MOE_CORE_MODEL_DECODE_VALUES_H_
#define MOE_CORE_MODEL_DECODE_VALUES_H_

#include <cstdint>

#include "core/model/dtype.h"

namespace moe {

// Decodes `len` stored values of `dtype` to float32 (no scale applied): the
// loaders read norms and scales with it, the portable kernels weight rows.
void DecodeValues(DType dtype, const uint8_t* values, int64_t len, float* out);

}  // namespace moe

#endif  // MOE_CORE_MODEL_DECODE_VALUES_H_

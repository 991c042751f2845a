#ifndef MOE_CORE_MODEL_GGUF_QUANTS_H_
#define MOE_CORE_MODEL_GGUF_QUANTS_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace moe {

// The GGML tensor types this reader decodes, with their GGUF type ids.
enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ8_0 = 8,
  kBF16 = 30,
};

// Elements per block and bytes per block of a GGML type. Quantized types
// pack 32 values with their fp16 scale (and minimum) into one block.
struct GgmlBlockLayout {
  int64_t block_elements;
  size_t block_bytes;
};

// The block layout of GGUF type id `type`; any type this reader does not
// decode is an error naming it (with its GGML name when known).
absl::StatusOr<GgmlBlockLayout> GgmlLayout(uint32_t type);

// The GGML name of a type id ("Q4_1"), or "type N" when unknown.
std::string GgmlTypeName(uint32_t type);

// Decodes `count` values (a multiple of the block size) of `type` from
// `data` into `out`:
//   Q8_0: d·q            (fp16 d, 32 int8 q)
//   Q4_0: d·(q − 8)      (fp16 d, 32 4-bit q; low nibbles are values 0–15)
//   Q4_1: d·q + m        (fp16 d and m, 32 4-bit q, same nibble order)
absl::Status DequantizeGgml(GgmlType type, const uint8_t* data, int64_t count,
                            float* out);

}  // namespace moe

#endif  // MOE_CORE_MODEL_GGUF_QUANTS_H_

#include "core/model/gguf_quants.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/model/float_formats.h"

namespace moe {
namespace {

constexpr int64_t kQuantBlock = 32;

uint16_t LoadU16(const uint8_t* p) {
  uint16_t value;
  std::memcpy(&value, p, sizeof(value));
  return value;
}

float LoadF16(const uint8_t* p) { return F16ToFloat(LoadU16(p)); }

// The 16 bytes of a 4-bit block hold value j in the low nibble of byte j and
// value j + 16 in its high nibble.
template <typename Decode>
void DecodeNibbles(const uint8_t* quants, float* out, Decode decode) {
  for (int j = 0; j < kQuantBlock / 2; ++j) {
    out[j] = decode(quants[j] & 0x0F);
    out[j + kQuantBlock / 2] = decode(quants[j] >> 4);
  }
}

}  // namespace

std::string GgmlTypeName(uint32_t type) {
  switch (type) {
    case 0:
      return "F32";
    case 1:
      return "F16";
    case 2:
      return "Q4_0";
    case 3:
      return "Q4_1";
    case 6:
      return "Q5_0";
    case 7:
      return "Q5_1";
    case 8:
      return "Q8_0";
    case 9:
      return "Q8_1";
    case 10:
      return "Q2_K";
    case 11:
      return "Q3_K";
    case 12:
      return "Q4_K";
    case 13:
      return "Q5_K";
    case 14:
      return "Q6_K";
    case 15:
      return "Q8_K";
    case 30:
      return "BF16";
  }
  return absl::StrCat("type ", type);
}

absl::StatusOr<GgmlBlockLayout> GgmlLayout(uint32_t type) {
  switch (static_cast<GgmlType>(type)) {
    case GgmlType::kF32:
      return GgmlBlockLayout{1, 4};
    case GgmlType::kF16:
    case GgmlType::kBF16:
      return GgmlBlockLayout{1, 2};
    case GgmlType::kQ4_0:
      return GgmlBlockLayout{kQuantBlock, 2 + 16};
    case GgmlType::kQ4_1:
      return GgmlBlockLayout{kQuantBlock, 2 + 2 + 16};
    case GgmlType::kQ8_0:
      return GgmlBlockLayout{kQuantBlock, 2 + 32};
  }
  return absl::UnimplementedError(absl::StrCat(
      "GGML tensor type ", GgmlTypeName(type),
      " is not supported (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1)"));
}

absl::Status DequantizeGgml(GgmlType type, const uint8_t* data, int64_t count,
                            float* out) {
  const absl::StatusOr<GgmlBlockLayout> layout =
      GgmlLayout(static_cast<uint32_t>(type));
  if (!layout.ok()) return layout.status();
  if (count % layout->block_elements != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(count, " values of ", GgmlTypeName(uint32_t(type)),
                     " are not whole blocks of ", layout->block_elements));
  }
  const int64_t blocks = count / layout->block_elements;
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* block = data + b * layout->block_bytes;
    float* values = out + b * layout->block_elements;
    switch (type) {
      case GgmlType::kF32:
        std::memcpy(values, block, sizeof(float));
        break;
      case GgmlType::kF16:
        values[0] = F16ToFloat(LoadU16(block));
        break;
      case GgmlType::kBF16:
        values[0] = Bf16ToFloat(LoadU16(block));
        break;
      case GgmlType::kQ8_0: {
        const float d = LoadF16(block);
        for (int j = 0; j < kQuantBlock; ++j) {
          values[j] = d * static_cast<int8_t>(block[2 + j]);
        }
        break;
      }
      case GgmlType::kQ4_0: {
        const float d = LoadF16(block);
        DecodeNibbles(block + 2, values, [d](int q) { return d * (q - 8); });
        break;
      }
      case GgmlType::kQ4_1: {
        const float d = LoadF16(block);
        const float m = LoadF16(block + 2);
        DecodeNibbles(block + 4, values, [d, m](int q) { return d * q + m; });
        break;
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace moe

#ifndef MOE_CORE_UTIL_BYTE_SIZE_H_
#define MOE_CORE_UTIL_BYTE_SIZE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace moe {

// A memory size: plain bytes ("1000000"), or a number with a unit: KB, MB,
// GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024), e.g.
// "24GiB", "1.5TB".
absl::StatusOr<int64_t> ParseByteSize(absl::string_view text);

// "1.50 GiB", "12.0 MiB", "3.0 KiB" or "512 B".
std::string FormatBytes(double bytes);

}  // namespace moe

#endif  // MOE_CORE_UTIL_BYTE_SIZE_H_

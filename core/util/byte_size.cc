#include "core/util/byte_size.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace moe {
namespace {

constexpr int64_t kKiB = int64_t{1} << 10;
constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kGiB = int64_t{1} << 30;

}  // namespace

std::string FormatBytes(double bytes) {
  if (bytes >= kGiB) return absl::StrFormat("%.2f GiB", bytes / kGiB);
  if (bytes >= kMiB) return absl::StrFormat("%.1f MiB", bytes / kMiB);
  if (bytes >= kKiB) return absl::StrFormat("%.1f KiB", bytes / kKiB);
  return absl::StrFormat("%.0f B", bytes);
}

absl::StatusOr<int64_t> ParseByteSize(absl::string_view text) {
  static constexpr std::pair<const char*, int64_t> kUnits[] = {
      {"", 1},
      {"B", 1},
      {"KB", 1000},
      {"MB", 1000 * 1000},
      {"GB", 1000 * 1000 * 1000},
      {"TB", int64_t{1000} * 1000 * 1000 * 1000},
      {"KiB", kKiB},
      {"MiB", kMiB},
      {"GiB", kGiB},
      {"TiB", int64_t{1} << 40}};
  const size_t unit_start = std::min(text.find_first_not_of("0123456789."),
                                     static_cast<size_t>(text.size()));
  const absl::string_view number = text.substr(0, unit_start);
  const absl::string_view unit =
      absl::StripLeadingAsciiWhitespace(text.substr(unit_start));
  double value = 0;
  if (number.empty() || !absl::SimpleAtod(number, &value)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", text, "\" is not a size (e.g. 24GiB, 1.5TB or 1000000)"));
  }
  const auto* found =
      std::find_if(std::begin(kUnits), std::end(kUnits),
                   [&](const auto& known) { return unit == known.first; });
  if (found == std::end(kUnits)) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown unit \"", unit,
                     "\" (use bytes, KB, MB, GB, TB, KiB, MiB, GiB or TiB)"));
  }
  const double bytes = value * found->second;
  if (found->second == 1 && bytes != std::floor(bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" is not a whole number of bytes"));
  }
  // Far above any machine's memory, and exact in a double.
  if (bytes > static_cast<double>(int64_t{1} << 53)) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" is too large"));
  }
  return std::llround(bytes);
}

}  // namespace moe

#ifndef MOE_CORE_UTIL_STATUS_MACROS_H_
#define MOE_CORE_UTIL_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Early return on error, as Abseil's internal macros do.
#define MOE_RETURN_IF_ERROR(expr)              \
  do {                                         \
    const absl::Status moe_status_ = (expr);   \
    if (!moe_status_.ok()) return moe_status_; \
  } while (false)

#define MOE_STATUS_CONCAT_INNER(a, b) a##b
#define MOE_STATUS_CONCAT(a, b) MOE_STATUS_CONCAT_INNER(a, b)

// `MOE_ASSIGN_OR_RETURN(auto x, MakeX());` declares x from an OK StatusOr or
// returns its error.
#define MOE_ASSIGN_OR_RETURN(lhs, expr)                                      \
  MOE_ASSIGN_OR_RETURN_IMPL(MOE_STATUS_CONCAT(moe_statusor_, __LINE__), lhs, \
                            expr)
#define MOE_ASSIGN_OR_RETURN_IMPL(statusor, lhs, expr) \
  auto statusor = (expr);                              \
  if (!statusor.ok()) return statusor.status();        \
  lhs = std::move(statusor).value()

#endif  // MOE_CORE_UTIL_STATUS_MACROS_H_

#ifndef MOE_RPC_SERVER_FLAGS_H_
#define MOE_RPC_SERVER_FLAGS_H_

#include <functional>

#include "absl/status/statusor.h"
#include "rpc/server_runner.h"

namespace moe {

// The flags every service shares (--drain-timeout-s,
// --max-connection-age-s) as ServeOptions, with
// `serving` as the health predicate (ServeOptions has the rest).
// INVALID_ARGUMENT naming the flag when it is out of range.
absl::StatusOr<ServeOptions> ServeOptionsFromFlags(
    std::function<bool()> serving = nullptr);

}  // namespace moe

#endif  // MOE_RPC_SERVER_FLAGS_H_

#ifndef MOE_ROUTER_SERVICE_EXPERT_BACKEND_FLAGS_H_
#define MOE_ROUTER_SERVICE_EXPERT_BACKEND_FLAGS_H_

#include "absl/status/statusor.h"
#include "router_service/expert_backend.h"

namespace moe {

// The flags that choose where a program's experts run (--plan, --workers,
// --activation-dtype, --worker-timeout-ms, --worker-startup-timeout-ms),
// shared by moe-router and moe-generate. Errors name the flag.
absl::StatusOr<ExpertBackendOptions> ExpertBackendOptionsFromFlags();

}  // namespace moe

#endif  // MOE_ROUTER_SERVICE_EXPERT_BACKEND_FLAGS_H_

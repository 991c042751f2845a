#ifndef MOE_TOOLS_MOE_ADMIN_ADMIN_REPORT_H_
#define MOE_TOOLS_MOE_ADMIN_ADMIN_REPORT_H_

#include <string>

#include "absl/status/statusor.h"
#include "moe/v1/expert.pb.h"
#include "moe/v1/router.pb.h"
#include "moe/v1/router_admin.pb.h"
#include "nlohmann/json.hpp"

namespace moe {

// `moe-admin status`: the router's requests and KV cache, its plan version,
// and per expert worker whether it is up, its calls and failovers.
std::string FormatRouterStatus(const v1::RouterStatus& status);

// `moe-admin load`: the report as JSON whose "load" is the [layers][experts]
// matrix `moe-plan --load` reads, beside the window and the workers' rows
// and times. INVALID_ARGUMENT when the counts do not match the shape.
absl::StatusOr<nlohmann::json> LoadReportToJson(const v1::LoadReport& report);

// A summary of the report for a terminal: the window, the tokens routed, and
// per worker its rows and time.
std::string FormatLoadSummary(const v1::LoadReport& report);

// `moe-admin apply-plan`, `rebalance`, `drain-worker`: the versions, per
// worker the experts it loaded, unloaded and holds, and where the time went.
std::string FormatPlanChange(const v1::PlanChange& change);

// `moe-admin add-worker`: the worker that joined.
std::string FormatWorkerJoined(const v1::WorkerDescription& description);

}  // namespace moe

#endif  // MOE_TOOLS_MOE_ADMIN_ADMIN_REPORT_H_

#ifndef MOE_TOOLS_MOE_PLAN_KUSTOMIZE_EMITTER_H_
#define MOE_TOOLS_MOE_PLAN_KUSTOMIZE_EMITTER_H_

#include <string>

#include "absl/status/status.h"
#include "core/placement/placement_plan.h"

namespace moe {

// The container ports the manifests of deploy/k8s give each service.
inline constexpr int kWorkerGrpcPort = 17011;
inline constexpr int kMetricsPort = 19100;

// Writes a kustomize Component for `plan` into `dir` (made if missing), for
// the overlays of deploy/k8s to include:
//   plan.json             the plan, as the ConfigMap moe-plan
//   worker-<id>.yaml      per worker id: a Deployment and a headless
//                         Service moe-worker-<id> (its pods are copies
//                         holding the same experts, which the router
//                         spreads the worker's calls over), a
//                         PodDisruptionBudget and a HorizontalPodAutoscaler
//                         on the worker's mean queue wait
//   kustomization.yaml    the Component: those files, and the router's
//                         --workers naming every worker's Service
// Worker ids must be usable in Kubernetes names (lowercase letters, digits
// and '-'); INVALID_ARGUMENT naming the id otherwise.
absl::Status EmitKustomize(const PlacementPlan& plan, const std::string& dir);

}  // namespace moe

#endif  // MOE_TOOLS_MOE_PLAN_KUSTOMIZE_EMITTER_H_

#include "tools/moe_plan/kustomize_emitter.h"

#include <filesystem>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace moe {
namespace {

using Json = nlohmann::ordered_json;

// Host memory beyond a worker's expert budget: the runtime, the gRPC
// buffers, the rows in flight.
constexpr int64_t kWorkerOverheadBytes = int64_t{1} << 30;
// Replicas the autoscaler may give one worker id.
constexpr int kMaxReplicas = 4;
// The mean queue wait of a Compute call above which a worker id scales out.
constexpr char kQueueWaitTarget[] = "20m";  // 20 ms

// A DNS label (RFC 1123) once prefixed with "moe-worker-".
bool IsNameable(const std::string& id) {
  if (id.empty() || id.size() > 63 - 11 || id.front() == '-' ||
      id.back() == '-') {
    return false;
  }
  for (char c : id) {
    if (!(absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '-')) {
      return false;
    }
  }
  return true;
}

Json Labels(const std::string& id) {
  return {{"app.kubernetes.io/name", "moe-serve"},
          {"app.kubernetes.io/component", "expert-worker"},
          {"moe-serve/worker-id", id}};
}

Json Selector(const std::string& id) {
  return {{"app.kubernetes.io/name", "moe-serve"}, {"moe-serve/worker-id", id}};
}

// The TLS files of the Secret moe-tls, as every pod mounts them.
constexpr char kTlsCert[] = "/etc/moe/tls/tls.pem";
constexpr char kTlsKey[] = "/etc/moe/tls/tls.key";
constexpr char kTlsCa[] = "/etc/moe/tls/ca.pem";

// moe-cli health over mTLS (Kubernetes' own gRPC probes speak no TLS).
Json HealthProbe(int period_s, int failures) {
  return {{"exec",
           {{"command",
             {"moe-cli", "--address",
              absl::StrCat("127.0.0.1:", kWorkerGrpcPort), "--tls-cert",
              kTlsCert, "--tls-key", kTlsKey, "--tls-ca", kTlsCa, "health"}}}},
          {"periodSeconds", period_s},
          {"timeoutSeconds", 5},
          {"failureThreshold", failures}};
}

Json WorkerDeployment(const std::string& name, const std::string& id,
                      int64_t memory_bytes) {
  const std::string memory = absl::StrCat(
      (memory_bytes + kWorkerOverheadBytes + (1 << 20) - 1) >> 20, "Mi");
  Json container = {
      {"name", "worker"},
      {"image", "moe-serve"},
      {"command", {"moe-expert-worker"}},
      {"args",
       {"--model=/model", "--plan=/etc/moe/plan/plan.json",
        absl::StrCat("--worker-id=", id),
        // Every address of the pod: the probes, the router and (through
        // kubectl port-forward) an operator; network-policies.yaml says who
        // may connect.
        absl::StrCat("--listen=0.0.0.0:", kWorkerGrpcPort),
        absl::StrCat("--metrics-listen=0.0.0.0:", kMetricsPort),
        absl::StrCat("--tls-cert=", kTlsCert),
        absl::StrCat("--tls-key=", kTlsKey), absl::StrCat("--tls-ca=", kTlsCa),
        // Every pod serves with the Secret's one certificate (CN
        // moe-cluster); the network policies let only the router reach a
        // worker.
        "--admin-identities=moe-cluster,admin",
        // New copies are found within a minute (see --max-connection-age-s).
        "--max-connection-age-s=30",
        "--drain-timeout-s=$(MOE_DRAIN_TIMEOUT_S)"}},
      {"envFrom", {{{"configMapRef", {{"name", "moe-config"}}}}}},
      {"ports",
       {{{"name", "grpc"}, {"containerPort", kWorkerGrpcPort}},
        {{"name", "metrics"}, {"containerPort", kMetricsPort}}}},
      // Loading a large model's experts takes minutes: liveness starts
      // once the worker served once.
      {"startupProbe", HealthProbe(10, 90)},
      {"readinessProbe", HealthProbe(5, 2)},
      {"livenessProbe", HealthProbe(10, 6)},
      {"resources",
       {{"requests", {{"cpu", "2"}, {"memory", memory}}},
        {"limits", {{"memory", memory}}}}},
      {"volumeMounts",
       {{{"name", "model"}, {"mountPath", "/model"}, {"readOnly", true}},
        {{"name", "plan"}, {"mountPath", "/etc/moe/plan"}, {"readOnly", true}},
        {{"name", "tls"}, {"mountPath", "/etc/moe/tls"}, {"readOnly", true}}}},
  };
  return {{"apiVersion", "apps/v1"},
          {"kind", "Deployment"},
          {"metadata", {{"name", name}, {"labels", Labels(id)}}},
          {"spec",
           {{"replicas", 1},
            {"selector", {{"matchLabels", Selector(id)}}},
            // A new copy serves before an old one leaves.
            {"strategy",
             {{"type", "RollingUpdate"},
              {"rollingUpdate", {{"maxUnavailable", 0}, {"maxSurge", 1}}}}},
            {"template",
             {{"metadata",
               {{"labels", Labels(id)},
                {"annotations",
                 {{"prometheus.io/scrape", "true"},
                  {"prometheus.io/port", std::to_string(kMetricsPort)}}}}},
              {"spec",
               {{"terminationGracePeriodSeconds", 45},
                {"containers", {container}},
                {"volumes",
                 {{{"name", "model"},
                   {"persistentVolumeClaim",
                    {{"claimName", "moe-model"}, {"readOnly", true}}}},
                  {{"name", "plan"}, {"configMap", {{"name", "moe-plan"}}}},
                  {{"name", "tls"},
                   {"secret", {{"secretName", "moe-tls"}}}}}}}}}}}}};
}

Json WorkerService(const std::string& name, const std::string& id) {
  // Headless: the name resolves to every ready copy's address.
  return {{"apiVersion", "v1"},
          {"kind", "Service"},
          {"metadata", {{"name", name}, {"labels", Labels(id)}}},
          {"spec",
           {{"clusterIP", "None"},
            {"selector", Selector(id)},
            {"ports",
             {{{"name", "grpc"},
               {"port", kWorkerGrpcPort},
               {"targetPort", "grpc"}}}}}}};
}

Json WorkerDisruptionBudget(const std::string& name, const std::string& id) {
  // The worker's experts may have no other holder: a voluntary eviction
  // waits until another copy serves.
  return {
      {"apiVersion", "policy/v1"},
      {"kind", "PodDisruptionBudget"},
      {"metadata", {{"name", name}, {"labels", Labels(id)}}},
      {"spec",
       {{"minAvailable", 1}, {"selector", {{"matchLabels", Selector(id)}}}}}};
}

Json WorkerAutoscaler(const std::string& name, const std::string& id) {
  return {
      {"apiVersion", "autoscaling/v2"},
      {"kind", "HorizontalPodAutoscaler"},
      {"metadata", {{"name", name}, {"labels", Labels(id)}}},
      {"spec",
       {{"scaleTargetRef",
         {{"apiVersion", "apps/v1"}, {"kind", "Deployment"}, {"name", name}}},
        {"minReplicas", 1},
        {"maxReplicas", kMaxReplicas},
        // From deploy/k8s/prometheus-adapter: the mean time a Compute call
        // waited in the worker's queue over the last minute.
        {"metrics",
         {{{"type", "Pods"},
           {"pods",
            {{"metric", {{"name", "moe_worker_queue_wait_seconds_mean"}}},
             {"target",
              {{"type", "AverageValue"},
               {"averageValue", kQueueWaitTarget}}}}}}}},
        // A new copy loads its experts before it helps: scale out at once,
        // in only after the load stayed low for ten minutes.
        {"behavior",
         {{"scaleUp", {{"stabilizationWindowSeconds", 0}}},
          {"scaleDown", {{"stabilizationWindowSeconds", 600}}}}}}}};
}

// YAML documents, each written as JSON (a subset of YAML).
std::string Documents(const std::vector<Json>& objects) {
  std::string text;
  for (const Json& object : objects) {
    absl::StrAppend(&text, "---\n", object.dump(2), "\n");
  }
  return text;
}

}  // namespace

absl::Status EmitKustomize(const PlacementPlan& plan, const std::string& dir) {
  for (const WorkerSpec& worker : plan.workers) {
    if (!IsNameable(worker.id)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--emit-kustomize: worker id \"", worker.id,
          "\" cannot name Kubernetes objects: use lowercase letters, digits "
          "and '-', at most 52 characters, not starting or ending with '-'"));
    }
  }
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    return absl::InternalError(absl::StrCat("--emit-kustomize: cannot make ",
                                            dir, ": ", error.message()));
  }
  MOE_RETURN_IF_ERROR(WritePlan(plan, dir + "/plan.json"));
  std::vector<std::string> files;
  std::vector<std::string> workers_flag;
  for (const WorkerSpec& worker : plan.workers) {
    const std::string name = "moe-worker-" + worker.id;
    const std::string file = absl::StrCat("worker-", worker.id, ".yaml");
    MOE_RETURN_IF_ERROR(WriteStringToFile(
        dir + "/" + file,
        absl::StrCat(
            "# Expert worker ", worker.id, " of plan version ", plan.version,
            " (written by moe-plan --emit-kustomize)\n",
            Documents({WorkerDeployment(name, worker.id, worker.memory_bytes),
                       WorkerService(name, worker.id),
                       WorkerDisruptionBudget(name, worker.id),
                       WorkerAutoscaler(name, worker.id)}))));
    files.push_back(file);
    workers_flag.push_back(
        absl::StrCat(worker.id, "=dns:///", name, ":", kWorkerGrpcPort));
  }
  const Json workers_patch = {
      {{"op", "add"},
       {"path", "/spec/template/spec/containers/0/args/-"},
       {"value",
        absl::StrCat("--workers=", absl::StrJoin(workers_flag, ","))}}};
  const Json component = {
      {"apiVersion", "kustomize.config.k8s.io/v1alpha1"},
      {"kind", "Component"},
      {"resources", files},
      {"configMapGenerator",
       {{{"name", "moe-plan"}, {"files", {"plan.json"}}}}},
      {"patches",
       {{{"target", {{"kind", "Deployment"}, {"name", "moe-router"}}},
         {"patch", workers_patch.dump()}}}}};
  return WriteStringToFile(
      dir + "/kustomization.yaml",
      absl::StrCat("# The expert workers of plan version ", plan.version,
                   " for ", plan.model,
                   " (written by moe-plan --emit-kustomize)\n",
                   component.dump(2), "\n"));
}

}  // namespace moe

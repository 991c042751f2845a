// moe-router: attention, gating, the LM head and sampling for a batch of
// requests, with the experts on expert workers (or in process).
#include <atomic>
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/util/command_line.h"
#include "core/util/status_macros.h"
#include "core/util/termination_signal.h"
#include "core/util/thread_pool.h"
#include "metrics/metrics_endpoint.h"
#include "router_service/admin_rpc_service.h"
#include "router_service/batch_engine.h"
#include "router_service/engine_flags.h"
#include "router_service/expert_backend.h"
#include "router_service/expert_backend_flags.h"
#include "router_service/placement_change.h"
#include "router_service/router_metrics.h"
#include "router_service/router_rpc_service.h"
#include "rpc/server_flags.h"
#include "rpc/server_runner.h"
#include "rpc/tls_flags.h"

ABSL_FLAG(std::string, admin_identities, "admin",
          "over TLS, the client certificate names (CN) that may cancel "
          "requests and change the plan; without TLS only loopback clients "
          "may");
ABSL_FLAG(std::string, model, "", "checkpoint directory (required)");
ABSL_FLAG(std::string, listen, "127.0.0.1:0",
          "host:port to serve on; port 0 picks a free one (printed)");
ABSL_FLAG(int, threads, 0, "compute threads; 0: one per core");
ABSL_FLAG(int, max_batch, 16, "sequences running at once");
ABSL_FLAG(int, max_queue, 256,
          "requests waiting to join the batch; beyond it RESOURCE_EXHAUSTED");

namespace {

absl::Status Serve() {
  const std::string model = absl::GetFlag(FLAGS_model);
  if (model.empty()) return absl::InvalidArgumentError("--model is required");
  MOE_ASSIGN_OR_RETURN(
      moe::ServeOptions serve_options,
      moe::ServeOptionsFromFlags(absl::GetFlag(FLAGS_listen),
                                 moe::ClientCertificates::kRequired));
  MOE_ASSIGN_OR_RETURN(moe::ExpertBackendOptions backend_options,
                       moe::ExpertBackendOptionsFromFlags());
  // The router is a client of its workers with its own certificate.
  MOE_ASSIGN_OR_RETURN(const moe::TlsConfig tls, moe::TlsConfigFromFlags());
  backend_options.remote.credentials = moe::ChannelCredentialsFor(tls);
  backend_options.remote.keepalive_interval = serve_options.keepalive_interval;
  moe::RouterMetrics metrics;
  backend_options.remote.on_call = [&metrics](const std::string& worker,
                                              absl::Duration round_trip) {
    metrics.ObserveCall(worker, round_trip);
  };
  moe::ThreadPool pool(absl::GetFlag(FLAGS_threads));
  MOE_ASSIGN_OR_RETURN(moe::ExpertBackend backend,
                       moe::OpenExpertBackend(model, backend_options, pool));
  moe::EngineOptions engine_options;
  engine_options.max_batch = absl::GetFlag(FLAGS_max_batch);
  engine_options.max_queue = absl::GetFlag(FLAGS_max_queue);
  if (engine_options.max_batch < 1 || engine_options.max_queue < 1) {
    return absl::InvalidArgumentError(
        "--max-batch and --max-queue must be >= 1");
  }
  MOE_RETURN_IF_ERROR(moe::ApplyEngineFlags(engine_options));
  engine_options.on_step = [&metrics](const moe::StepRecord& step) {
    metrics.ObserveStep(step);
  };
  MOE_ASSIGN_OR_RETURN(
      std::unique_ptr<moe::ModelRunner> runner,
      moe::ModelRunnerFromFlags(*backend.weights, *backend.dispatch, pool));
  moe::BatchEngine engine(*runner, engine_options);
  metrics.set_sources(&engine, &runner->config(), backend.remote);
  MOE_ASSIGN_OR_RETURN(
      const std::unique_ptr<moe::MetricsEndpoint> metrics_endpoint,
      moe::MetricsEndpointFromFlags("moe-router", metrics.collectables()));
  std::atomic<bool> draining{false};
  const moe::AdminAccess admin(absl::StrSplit(
      absl::GetFlag(FLAGS_admin_identities), ',', absl::SkipWhitespace()));
  moe::RouterRpcService service(engine, runner->config(), backend.remote, admin,
                                &draining);
  std::vector<grpc::Service*> services = {&service};
  // With expert workers, the tier changes while serving: plans applied
  // between engine steps, workers joining and leaving.
  std::unique_ptr<moe::PlacementChange> change;
  std::unique_ptr<moe::RouterAdminService> admin_service;
  if (backend.remote != nullptr) {
    change = std::make_unique<moe::PlacementChange>(
        *backend.remote, [&engine](std::function<void()> task) {
          return engine.RunBetweenSteps(std::move(task));
        });
    admin_service = std::make_unique<moe::RouterAdminService>(
        *change, service.load_window(), admin);
    services.push_back(admin_service.get());
  }
  // NOT_SERVING while some expert has no live holder. On SIGTERM it takes
  // no new requests and ends once those it has are done.
  moe::GrpcExpertDispatch* remote = backend.remote;
  serve_options.serving = [remote] {
    return remote == nullptr || remote->EveryExpertHeld();
  };
  serve_options.draining = &draining;
  serve_options.idle = [&engine] {
    const moe::EngineStatus status = engine.Status();
    return status.running == 0 && status.queued == 0;
  };
  // Streams still open at the end get UNAVAILABLE when the engine stops.
  return moe::ServeUntilTerminated(services, absl::GetFlag(FLAGS_listen),
                                   "moe-router", serve_options);
}

}  // namespace

int main(int argc, char** argv) {
  moe::BlockTerminationSignals();
  moe::ParseCommandLine(
      argc, argv,
      "Serves moe.v1.Router: generation for token-id requests, with the "
      "experts on expert workers.\n"
      "usage: moe-router --model DIR [--plan FILE --workers id=host:port,...] "
      "[--listen 127.0.0.1:PORT]");
  const absl::Status status = Serve();
  if (!status.ok()) {
    std::cerr << "moe-router: " << status.message() << std::endl;
    return 1;
  }
  return 0;
}

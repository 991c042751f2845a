// moe-router: attention, gating, the LM head and sampling for a batch of
// requests, with the experts on expert workers (or in process).
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "core/termination_signal.h"
#include "core/thread_pool.h"
#include "protos/server_runner.h"
#include "router_service/batch_engine.h"
#include "router_service/expert_backend.h"
#include "router_service/model_runner.h"
#include "router_service/router_rpc_service.h"
#include "tools/command_line.h"

ABSL_FLAG(std::string, model, "", "checkpoint directory (required)");
ABSL_FLAG(std::string, plan, "",
          "placement plan JSON; with --workers, experts run on the workers");
ABSL_FLAG(std::string, workers, "",
          "expert workers as id=host:port,... (every worker of the plan)");
ABSL_FLAG(std::string, listen, "127.0.0.1:0",
          "host:port to serve on; port 0 picks a free one (printed)");
ABSL_FLAG(int, threads, 0, "compute threads; 0: one per core");
ABSL_FLAG(int, max_batch, 16, "sequences in one engine step");
ABSL_FLAG(int, max_queue, 256,
          "requests waiting to join the batch; beyond it RESOURCE_EXHAUSTED");
ABSL_FLAG(int64_t, kv_tokens, 1 << 20,
          "KV cache positions all running sequences may hold together");
ABSL_FLAG(int, worker_timeout_ms, 10000,
          "a worker call not answered in this time fails its requests with "
          "DEADLINE_EXCEEDED");
ABSL_FLAG(int, worker_startup_timeout_ms, 60000,
          "how long to wait at start for the workers to answer");
ABSL_FLAG(std::string, activation_dtype, "fp32",
          "activations to and from workers: fp32 (exact) or bf16 (half the "
          "bytes)");

namespace {

absl::Status Serve() {
  const std::string model = absl::GetFlag(FLAGS_model);
  if (model.empty()) return absl::InvalidArgumentError("--model is required");
  moe::ExpertBackendOptions backend_options;
  backend_options.plan_path = absl::GetFlag(FLAGS_plan);
  backend_options.workers = absl::GetFlag(FLAGS_workers);
  MOE_ASSIGN_OR_RETURN(
      backend_options.remote.activation_dtype,
      moe::ParseActivationDType(absl::GetFlag(FLAGS_activation_dtype)));
  backend_options.remote.call_timeout =
      absl::Milliseconds(absl::GetFlag(FLAGS_worker_timeout_ms));
  backend_options.startup_timeout =
      absl::Milliseconds(absl::GetFlag(FLAGS_worker_startup_timeout_ms));
  moe::ThreadPool pool(absl::GetFlag(FLAGS_threads));
  MOE_ASSIGN_OR_RETURN(moe::ExpertBackend backend,
                       moe::OpenExpertBackend(model, backend_options, pool));
  moe::ModelRunner runner(*backend.weights, *backend.dispatch, pool);
  moe::EngineOptions engine_options;
  engine_options.max_batch = absl::GetFlag(FLAGS_max_batch);
  engine_options.max_queue = absl::GetFlag(FLAGS_max_queue);
  engine_options.kv_token_capacity = absl::GetFlag(FLAGS_kv_tokens);
  if (engine_options.max_batch < 1 || engine_options.max_queue < 1 ||
      engine_options.kv_token_capacity < 1) {
    return absl::InvalidArgumentError(
        "--max-batch, --max-queue and --kv-tokens must be >= 1");
  }
  moe::BatchEngine engine(runner, engine_options);
  moe::RouterRpcService service(engine, runner.config(), backend.remote);
  MOE_ASSIGN_OR_RETURN(
      moe::RunningServer server,
      moe::StartServer({&service}, absl::GetFlag(FLAGS_listen)));
  moe::AnnounceAddress("moe-router", server.address);
  moe::WaitForTerminationSignal();
  // Streams still open end with UNAVAILABLE when the engine stops.
  server.server->Shutdown(std::chrono::system_clock::now() +
                          std::chrono::seconds(2));
  return absl::OkStatus();
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

// moe-gateway: the public moe.v1.Inference API in front of one or more
// routers. It tokenizes, validates and admits requests and turns the
// routers' token streams into text; it loads no weights and keeps no state
// beyond the requests in flight.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_split.h"
#include "core/model/model_config.h"
#include "core/tokenizer/tokenizer.h"
#include "core/util/command_line.h"
#include "core/util/status_macros.h"
#include "core/util/termination_signal.h"
#include "gateway/admission.h"
#include "gateway/api_keys.h"
#include "gateway/gateway_metrics.h"
#include "gateway/generate_request.h"
#include "gateway/inference_service.h"
#include "gateway/request_ids.h"
#include "gateway/router_pool.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "metrics/metrics_endpoint.h"
#include "rpc/server_flags.h"
#include "rpc/server_runner.h"
#include "rpc/tls_flags.h"

ABSL_FLAG(std::string, model, "",
          "checkpoint directory: config.json and the tokenizer (required)");
ABSL_FLAG(std::string, routers, "",
          "host:port of each router, comma-separated (required)");
ABSL_FLAG(std::string, listen, "127.0.0.1:0",
          "host:port to serve on; port 0 picks a free one (printed)");
ABSL_FLAG(int, max_in_flight, 64, "requests running through the gateway");
ABSL_FLAG(std::string, api_keys, "",
          "clients' API keys and limits, one per line: NAME SHA256-HEX "
          "[max_in_flight=N] [tokens_per_minute=N]; unset: no keys asked for");
ABSL_FLAG(int64_t, max_prompt_bytes, 0,
          "longest text prompt in bytes, refused before it is tokenized; 0: "
          "16 bytes per token of the model's context");
ABSL_FLAG(int, max_queued, 256,
          "requests waiting for a running slot; beyond it RESOURCE_EXHAUSTED");

namespace {

// "models/x/" and "models/x" are both "x".
std::string DirectoryName(const std::string& directory) {
  std::filesystem::path path =
      std::filesystem::path(directory).lexically_normal();
  if (!path.has_filename()) path = path.parent_path();
  return path.filename().string();
}

absl::Status Serve() {
  const std::string model = absl::GetFlag(FLAGS_model);
  if (model.empty()) return absl::InvalidArgumentError("--model is required");
  const std::vector<std::string> routers =
      absl::StrSplit(absl::GetFlag(FLAGS_routers), ',', absl::SkipWhitespace());
  if (routers.empty()) {
    return absl::InvalidArgumentError("--routers is required");
  }
  const int max_in_flight = absl::GetFlag(FLAGS_max_in_flight);
  const int max_queued = absl::GetFlag(FLAGS_max_queued);
  if (max_in_flight < 1 || max_queued < 0) {
    return absl::InvalidArgumentError(
        "--max-in-flight must be >= 1 and --max-queued >= 0");
  }
  const int64_t max_prompt_bytes = absl::GetFlag(FLAGS_max_prompt_bytes);
  if (max_prompt_bytes < 0) {
    return absl::InvalidArgumentError("--max-prompt-bytes must be >= 0");
  }
  // The public port: TLS when given a certificate, client certificates
  // optional (checked when sent).
  MOE_ASSIGN_OR_RETURN(
      moe::ServeOptions serve_options,
      moe::ServeOptionsFromFlags(absl::GetFlag(FLAGS_listen),
                                 moe::ClientCertificates::kOptional));
  MOE_ASSIGN_OR_RETURN(const moe::TlsConfig tls, moe::TlsConfigFromFlags());
  MOE_ASSIGN_OR_RETURN(const moe::ModelConfig config,
                       moe::LoadModelConfig(model));
  MOE_ASSIGN_OR_RETURN(const std::unique_ptr<moe::Tokenizer> tokenizer,
                       moe::LoadTokenizer(model, config));
  const size_t prompt_bytes = max_prompt_bytes > 0
                                  ? static_cast<size_t>(max_prompt_bytes)
                                  : moe::DefaultMaxPromptBytes(config);
  // Room for the prompt and the other fields (stop strings, ids), and no
  // more: a larger message is refused before it is read whole.
  serve_options.max_receive_message_bytes =
      static_cast<int>(std::min<size_t>(prompt_bytes + (1 << 20), 256 << 20));
  moe::Admission admission(max_in_flight, max_queued);
  // The gateway is a client of the routers with its own certificate.
  moe::RouterPool pool(routers, moe::ChannelCredentialsFor(tls),
                       serve_options.keepalive_interval);
  moe::RequestIds ids;
  std::unique_ptr<moe::ApiKeys> keys;
  if (!absl::GetFlag(FLAGS_api_keys).empty()) {
    MOE_ASSIGN_OR_RETURN(keys,
                         moe::ApiKeys::Load(absl::GetFlag(FLAGS_api_keys)));
  }
  moe::GatewayMetrics metrics(admission, keys.get());
  MOE_ASSIGN_OR_RETURN(
      const std::unique_ptr<moe::MetricsEndpoint> metrics_endpoint,
      moe::MetricsEndpointFromFlags("moe-gateway", metrics.collectables()));
  moe::InferenceService service(
      config, DirectoryName(model), prompt_bytes,
      {*tokenizer, admission, pool, ids, metrics, keys.get()});
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  return moe::ServeUntilTerminated({&service}, absl::GetFlag(FLAGS_listen),
                                   "moe-gateway", serve_options);
}

}  // namespace

int main(int argc, char** argv) {
  moe::BlockTerminationSignals();
  moe::ParseCommandLine(
      argc, argv,
      "Serves moe.v1.Inference: text generation in front of moe-router.\n"
      "usage: moe-gateway --model DIR --routers host:port[,host:port...] "
      "[--listen 127.0.0.1:PORT] [--max-in-flight N --max-queued N] "
      "[--metrics-listen 127.0.0.1:PORT] [--api-keys FILE] [--max-prompt-bytes "
      "N] [--tls-cert PEM "
      "--tls-key PEM --tls-ca PEM]");
  const absl::Status status = Serve();
  if (!status.ok()) {
    std::cerr << "moe-gateway: " << status.message() << std::endl;
    return 1;
  }
  return 0;
}

// moe-cli: generates, tokenizes and describes the model through a moe-serve
// gateway (moe.v1.Inference).
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/time/time.h"
#include "core/util/command_line.h"
#include "core/util/status_macros.h"
#include "rpc/tls_flags.h"
#include "sdk/cpp/cli/commands.h"
#include "sdk/cpp/cli/repeated_flag.h"
#include "sdk/cpp/client.h"

ABSL_FLAG(std::string, address, "",
          "the gateway's host:port; empty: $MOE_ADDRESS");
ABSL_FLAG(int, max_tokens, 16, "generate: tokens to generate at most");
ABSL_FLAG(std::optional<float>, temperature, std::nullopt,
          "generate: sampling temperature, 0 greedy; unset: 1");
ABSL_FLAG(std::optional<float>, top_p, std::nullopt,
          "generate: nucleus sampling mass in (0, 1]; unset: 1");
ABSL_FLAG(int, top_k, 0, "generate: sample among the k most likely; 0: all");
ABSL_FLAG(std::optional<int64_t>, seed, std::nullopt,
          "generate: sampling seed; unset: random");
ABSL_FLAG(bool, ignore_eos, false, "generate: keep generating after EOS");
ABSL_FLAG(bool, add_special_tokens, false,
          "tokenize: prepend BOS when the model expects it, as generate does");
ABSL_FLAG(int64_t, deadline_ms, 0,
          "the call's deadline in milliseconds, retries included; 0: 5 min");
ABSL_FLAG(std::string, api_key, "",
          "the API key the gateway asks for; empty: $MOE_API_KEY");
ABSL_FLAG(int, retries, 3,
          "retries of UNAVAILABLE (before any text arrived), with backoff");

namespace {

constexpr char kUsage[] =
    "Calls a moe-serve gateway (moe.v1.Inference).\n"
    "usage: moe-cli [--address HOST:PORT] COMMAND [ARG] [flags]\n"
    "  generate PROMPT   streams the completion to stdout, then the finish\n"
    "                    reason and usage to stderr; --stop STR ends it "
    "before\n"
    "                    STR (repeatable, up to 8)\n"
    "  info              the served model\n"
    "  tokenize TEXT     the token ids, comma-separated\n"
    "  detokenize IDS    the text of comma-separated token ids\n"
    "  health [SERVICE]  grpc.health.v1 status of any moe-serve server\n"
    "                    (gateway, router, worker); exit status 0 only when\n"
    "                    SERVING; --deadline-ms unset: 5 s\n"
    "The address defaults to $MOE_ADDRESS. --tls-ca CA.pem connects with TLS;\n"
    "--tls-cert and --tls-key present a client certificate. Errors print the\n"
    "gRPC status code and message; the exit status is then 1.";

absl::Status Run(const std::vector<std::string>& args,
                 const std::vector<std::string>& stop) {
  std::string address = absl::GetFlag(FLAGS_address);
  if (address.empty() && std::getenv("MOE_ADDRESS") != nullptr) {
    address = std::getenv("MOE_ADDRESS");
  }
  if (address.empty()) {
    return absl::InvalidArgumentError("--address (or $MOE_ADDRESS) is needed");
  }
  const std::string command = args.empty() ? "" : args[0];
  const bool with_argument =
      command == "generate" || command == "tokenize" || command == "detokenize";
  if (!(command == "info" && args.size() == 1) &&
      !(command == "health" && args.size() <= 2) &&
      !(with_argument && args.size() == 2)) {
    return absl::InvalidArgumentError(
        "expected generate PROMPT, info, tokenize TEXT, detokenize IDS or "
        "health [SERVICE]; see --help");
  }
  const absl::Duration timeout =
      absl::Milliseconds(absl::GetFlag(FLAGS_deadline_ms));
  MOE_ASSIGN_OR_RETURN(const moe::TlsConfig tls, moe::TlsConfigFromFlags());
  const std::shared_ptr<grpc::ChannelCredentials> credentials =
      moe::ChannelCredentialsFor(tls);
  if (command == "health") {
    return moe::client::RunHealth(
        address, credentials, args.size() == 2 ? args[1] : "",
        timeout == absl::ZeroDuration() ? absl::Seconds(5) : timeout,
        std::cout);
  }
  moe::client::ClientOptions options;
  options.retry.max_retries = absl::GetFlag(FLAGS_retries);
  options.credentials = credentials;
  options.api_key = absl::GetFlag(FLAGS_api_key);
  if (options.api_key.empty() && std::getenv("MOE_API_KEY") != nullptr) {
    options.api_key = std::getenv("MOE_API_KEY");
  }
  moe::client::Client client(address, options);
  moe::client::CallOptions call;
  call.timeout = timeout;

  if (command == "generate") {
    moe::client::GenerateParams params;
    params.max_tokens = absl::GetFlag(FLAGS_max_tokens);
    params.temperature = absl::GetFlag(FLAGS_temperature);
    params.top_p = absl::GetFlag(FLAGS_top_p);
    params.top_k = absl::GetFlag(FLAGS_top_k);
    params.seed = absl::GetFlag(FLAGS_seed);
    params.stop = stop;
    params.ignore_eos = absl::GetFlag(FLAGS_ignore_eos);
    return moe::client::RunGenerate(
        client, moe::client::MakeGenerateRequest(args[1], params), call,
        std::cout, std::cerr);
  }
  if (command == "info") return moe::client::RunInfo(client, call, std::cout);
  if (command == "tokenize") {
    return moe::client::RunTokenize(client, args[1],
                                    absl::GetFlag(FLAGS_add_special_tokens),
                                    call, std::cout);
  }
  return moe::client::RunDetokenize(client, args[1], call, std::cout);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  const absl::StatusOr<std::vector<std::string>> stop =
      moe::client::TakeRepeatedFlag("stop", args);
  if (!stop.ok()) {
    std::cerr << "moe-cli: " << stop.status().ToString() << std::endl;
    return 1;
  }
  std::vector<char*> pointers;
  for (std::string& arg : args) pointers.push_back(arg.data());
  const std::vector<std::string> positional = moe::ParseCommandLine(
      static_cast<int>(pointers.size()), pointers.data(), kUsage);
  const absl::Status status = Run(positional, *stop);
  if (!status.ok()) {
    std::cerr << "moe-cli: " << status.ToString() << std::endl;
    return 1;
  }
  return 0;
}

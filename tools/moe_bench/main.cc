// moe-bench: a load generator for a moe-serve gateway (moe.v1.Inference). It
// sends seeded random token-id prompts at a fixed concurrency or a Poisson
// rate and reports throughput and latency percentiles.
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/util/command_line.h"
#include "core/util/status_macros.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "rpc/tls_flags.h"
#include "sdk/cpp/client.h"
#include "tools/moe_bench/bench_report.h"
#include "tools/moe_bench/length_distribution.h"
#include "tools/moe_bench/load_generator.h"
#include "tools/moe_bench/request_source.h"

ABSL_FLAG(std::string, address, "",
          "the gateway's host:port (required); empty: $MOE_ADDRESS");
ABSL_FLAG(std::string, api_key, "",
          "the API key the gateway asks for; empty: $MOE_API_KEY");
ABSL_FLAG(int, concurrency, 0,
          "requests in flight: without --rate, a closed loop of this many "
          "(0: 1); with --rate, a cap on them (0: none)");
ABSL_FLAG(double, rate, 0,
          "requests per second, arriving as a seeded Poisson process (open "
          "loop); 0: closed loop at --concurrency");
ABSL_FLAG(std::string, prompt_tokens, "128",
          "prompt length in tokens: N or uniform:MIN:MAX");
ABSL_FLAG(std::string, output_tokens, "128",
          "generated tokens per request: N or uniform:MIN:MAX");
ABSL_FLAG(int64_t, requests, 0,
          "measured requests to send (0: no limit; then --duration is needed)");
ABSL_FLAG(double, duration, 0,
          "seconds after which no new measured request is sent (0: no limit)");
ABSL_FLAG(int64_t, warmup, 1,
          "requests sent one at a time before the measurement and left out of "
          "it (they pay for the connection)");
ABSL_FLAG(uint64_t, seed, 0, "seed of the prompts, lengths and arrivals");
ABSL_FLAG(double, request_timeout, 300,
          "seconds a request may take before it fails with DEADLINE_EXCEEDED");
ABSL_FLAG(std::string, json, "", "also write the report as JSON to this file");
ABSL_FLAG(std::string, token_arrivals, "",
          "also write when each measured request's tokens came to this file "
          "(\"REQUEST UNIX_SECONDS TOKENS\" per response)");

namespace {

constexpr char kUsage[] =
    "Load generator for a moe-serve gateway (moe.v1.Inference).\n"
    "usage: moe-bench --address HOST:PORT (--concurrency N | --rate R "
    "[--concurrency CAP])\n"
    "                 (--requests N | --duration SECONDS) [--prompt-tokens "
    "N|uniform:MIN:MAX]\n"
    "                 [--output-tokens N|uniform:MIN:MAX] [--warmup N] "
    "[--seed S] [--json FILE] [--token-arrivals FILE]\n"
    "Prompts are random token ids; requests are greedy with ignore_eos, so "
    "each generates\nexactly its output length. Prints a table to stdout. "
    "Exits 0 once the run is done,\nfailed requests included (the report "
    "counts them by gRPC status code); 1 for bad\nflags or when the gateway "
    "cannot be asked for the model.";

// Time to wait for the model's info (retries of UNAVAILABLE included).
constexpr absl::Duration kModelInfoTimeout = absl::Seconds(30);

absl::StatusOr<std::string> AddressFromFlags() {
  std::string address = absl::GetFlag(FLAGS_address);
  if (address.empty() && std::getenv("MOE_ADDRESS") != nullptr) {
    address = std::getenv("MOE_ADDRESS");
  }
  if (address.empty()) {
    return absl::InvalidArgumentError("--address (or $MOE_ADDRESS) is needed");
  }
  return address;
}

absl::StatusOr<absl::Duration> SecondsFlag(double seconds,
                                           absl::string_view flag) {
  if (!std::isfinite(seconds)) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " must be a finite number of seconds"));
  }
  return absl::Seconds(seconds);
}

absl::StatusOr<moe::LoadOptions> LoadOptionsFromFlags() {
  moe::LoadOptions options;
  options.rate = absl::GetFlag(FLAGS_rate);
  options.concurrency = absl::GetFlag(FLAGS_concurrency);
  if (options.rate == 0 && options.concurrency == 0) options.concurrency = 1;
  options.max_requests = absl::GetFlag(FLAGS_requests);
  MOE_ASSIGN_OR_RETURN(
      options.duration,
      SecondsFlag(absl::GetFlag(FLAGS_duration), "--duration"));
  options.warmup = absl::GetFlag(FLAGS_warmup);
  options.seed = absl::GetFlag(FLAGS_seed);
  MOE_ASSIGN_OR_RETURN(
      options.request_timeout,
      SecondsFlag(absl::GetFlag(FLAGS_request_timeout), "--request-timeout"));
  MOE_RETURN_IF_ERROR(moe::ValidateLoadOptions(options));
  return options;
}

moe::ModelLimits LimitsOf(const moe::v1::ModelInfo& info) {
  moe::ModelLimits limits;
  limits.vocab_size = info.vocab_size();
  limits.context_length = info.context_length();
  if (info.bos_token_id() >= 0) {
    limits.special_token_ids.push_back(info.bos_token_id());
  }
  limits.special_token_ids.insert(limits.special_token_ids.end(),
                                  info.eos_token_ids().begin(),
                                  info.eos_token_ids().end());
  return limits;
}

absl::Status Run() {
  // Every flag is checked before the gateway is called.
  moe::BenchSettings settings;
  MOE_ASSIGN_OR_RETURN(settings.address, AddressFromFlags());
  MOE_ASSIGN_OR_RETURN(
      settings.prompt_tokens,
      moe::ParseLengthDistribution(absl::GetFlag(FLAGS_prompt_tokens),
                                   "--prompt-tokens"));
  MOE_ASSIGN_OR_RETURN(
      settings.output_tokens,
      moe::ParseLengthDistribution(absl::GetFlag(FLAGS_output_tokens),
                                   "--output-tokens"));
  MOE_ASSIGN_OR_RETURN(settings.load, LoadOptionsFromFlags());

  MOE_ASSIGN_OR_RETURN(const moe::TlsConfig tls, moe::TlsConfigFromFlags());
  const std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(settings.address, moe::ChannelCredentialsFor(tls));
  // The model's info may wait for a gateway that is starting (retries); the
  // measured requests may not (see TimeRequest).
  moe::client::ClientOptions info_options;
  info_options.api_key = absl::GetFlag(FLAGS_api_key);
  if (info_options.api_key.empty() && std::getenv("MOE_API_KEY") != nullptr) {
    info_options.api_key = std::getenv("MOE_API_KEY");
  }
  moe::client::Client info_client(channel, info_options);
  moe::client::CallOptions info_call;
  info_call.timeout = kModelInfoTimeout;
  const absl::StatusOr<moe::v1::ModelInfo> info =
      info_client.GetModelInfo(info_call);
  if (!info.ok()) {
    return absl::Status(
        info.status().code(),
        absl::StrCat("cannot get the model's info from ", settings.address,
                     ": ", info.status().message()));
  }
  settings.model = info->name();
  settings.context_length = info->context_length();
  MOE_ASSIGN_OR_RETURN(
      moe::RequestSource source,
      moe::RequestSource::Create(settings.prompt_tokens, settings.output_tokens,
                                 LimitsOf(*info), settings.load.seed));

  moe::client::ClientOptions no_retries = info_options;
  no_retries.retry.max_retries = 0;
  moe::client::Client client(channel, no_retries);
  const moe::LoadResult result = moe::RunLoad(client, source, settings.load);
  const moe::BenchReport report = moe::BuildReport(settings, result);
  std::cout << moe::FormatReportTable(report) << std::flush;
  const std::string json_path = absl::GetFlag(FLAGS_json);
  if (!json_path.empty()) {
    MOE_RETURN_IF_ERROR(moe::WriteJsonReport(report, json_path));
  }
  const std::string arrivals_path = absl::GetFlag(FLAGS_token_arrivals);
  if (!arrivals_path.empty()) {
    MOE_RETURN_IF_ERROR(
        moe::WriteTokenArrivals(result.measured, arrivals_path));
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> positional =
      moe::ParseCommandLine(argc, argv, kUsage);
  absl::Status status =
      positional.empty()
          ? Run()
          : absl::InvalidArgumentError(absl::StrCat(
                "unexpected argument \"", positional[0], "\"; see --help"));
  if (!status.ok()) {
    std::cerr << "moe-bench: " << status.ToString() << std::endl;
    return 1;
  }
  return 0;
}

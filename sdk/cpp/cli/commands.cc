#include "sdk/cpp/cli/commands.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/util/status_macros.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "rpc/grpc_status.h"

namespace moe::client {
namespace {

std::string FinishReasonName(v1::FinishReason reason) {
  // "FINISH_REASON_LENGTH" -> "length".
  std::string name = v1::FinishReason_Name(reason);
  return absl::AsciiStrToLower(name.substr(name.rfind('_') + 1));
}

}  // namespace

absl::Status RunGenerate(Client& client, const v1::GenerateRequest& request,
                         const CallOptions& call, std::ostream& out,
                         std::ostream& log) {
  MOE_ASSIGN_OR_RETURN(const GenerateResult result,
                       client.Generate(
                           request,
                           [&out](const v1::GenerateResponse& response) {
                             out << response.text() << std::flush;
                             return true;
                           },
                           call));
  out << std::endl;
  log << "finish_reason=" << FinishReasonName(result.finish_reason)
      << " prompt_tokens=" << result.usage.prompt_tokens()
      << " completion_tokens=" << result.usage.completion_tokens() << "\n";
  return absl::OkStatus();
}

absl::Status RunInfo(Client& client, const CallOptions& call,
                     std::ostream& out) {
  MOE_ASSIGN_OR_RETURN(const v1::ModelInfo info, client.GetModelInfo(call));
  out << "name: " << info.name() << "\n"
      << "architecture: " << info.architecture() << "\n"
      << "num_layers: " << info.num_layers() << "\n"
      << "num_experts: " << info.num_experts() << "\n"
      << "top_k: " << info.top_k() << "\n"
      << "hidden_size: " << info.hidden_size() << "\n"
      << "vocab_size: " << info.vocab_size() << "\n"
      << "context_length: " << info.context_length() << "\n"
      << "weight_dtype: " << info.weight_dtype() << "\n"
      << "placement_version: " << info.placement_version() << "\n"
      << "bos_token_id: " << info.bos_token_id() << "\n"
      << "eos_token_ids: " << absl::StrJoin(info.eos_token_ids(), ",") << "\n";
  return absl::OkStatus();
}

absl::Status RunTokenize(Client& client, const std::string& text,
                         bool add_special_tokens, const CallOptions& call,
                         std::ostream& out) {
  MOE_ASSIGN_OR_RETURN(const std::vector<int32_t> ids,
                       client.Tokenize(text, add_special_tokens, call));
  out << absl::StrJoin(ids, ",") << "\n";
  return absl::OkStatus();
}

absl::Status RunDetokenize(Client& client, const std::string& token_ids,
                           const CallOptions& call, std::ostream& out) {
  std::vector<int32_t> ids;
  for (absl::string_view item :
       absl::StrSplit(token_ids, ',', absl::SkipWhitespace())) {
    int32_t id;
    if (!absl::SimpleAtoi(item, &id)) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", item, "\" is not a token id"));
    }
    ids.push_back(id);
  }
  MOE_ASSIGN_OR_RETURN(const std::string text, client.Detokenize(ids, call));
  out << text << "\n";
  return absl::OkStatus();
}

absl::Status RunHealth(
    const std::string& address,
    const std::shared_ptr<grpc::ChannelCredentials>& credentials,
    const std::string& service, absl::Duration timeout, std::ostream& out) {
  auto stub = grpc::health::v1::Health::NewStub(
      grpc::CreateChannel(address, credentials));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  const std::string name =
      grpc::health::v1::HealthCheckResponse::ServingStatus_Name(
          response.status());
  out << name << "\n";
  if (response.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
    return absl::UnavailableError(absl::StrCat(address, " is ", name));
  }
  return absl::OkStatus();
}

}  // namespace moe::client

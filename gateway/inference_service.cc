#include "gateway/inference_service.h"

#include <chrono>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"
#include "gateway/admitted_unary_call.h"
#include "gateway/generate_request.h"
#include "rpc/grpc_status.h"

namespace moe {
namespace {

// How long GetModelInfo waits for a router's status at most.
constexpr std::chrono::seconds kStatusTimeout(5);

// Ends a stream at once with an error.
class RejectedWriter : public grpc::ServerWriteReactor<v1::GenerateResponse> {
 public:
  RejectedWriter(const absl::Status& status, GatewayMetrics& metrics,
                 absl::Time arrived) {
    const grpc::Status finish = ToGrpcStatus(status);
    metrics.ObserveEnd(finish);
    metrics.ObserveDuration(absl::Now() - arrived);
    Finish(finish);
  }
  void OnDone() override { delete this; }
};

grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* context,
                                      const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// The "authorization" metadata of a call, if any.
std::optional<std::string_view> Authorization(
    const grpc::CallbackServerContext& context) {
  const auto& metadata = context.client_metadata();
  const auto found = metadata.find("authorization");
  if (found == metadata.end()) return std::nullopt;
  return std::string_view(found->second.data(), found->second.size());
}

// The index gRPC gives `method` of moe.v1.Inference: its place in the
// service's declaration, as in the generated code.
int MethodIndex(const char* method) {
  return v1::GenerateRequest::descriptor()
      ->file()
      ->FindServiceByName("Inference")
      ->FindMethodByName(method)
      ->index();
}

template <typename Request, typename Reply>
using UnaryHandler =
    grpc::internal::CallbackUnaryHandler<ReceivedRequest<Request>, Reply>;

}  // namespace

InferenceService::InferenceService(const ModelConfig& config,
                                   std::string model_name,
                                   size_t max_prompt_bytes, GatewayParts parts)
    : config_(config),
      model_name_(std::move(model_name)),
      max_prompt_bytes_(max_prompt_bytes),
      parts_(parts) {
  ServeReceivedRequests();
}

void InferenceService::ServeReceivedRequests() {
  // The handlers the generated CallbackService registers, with the request
  // type replaced.
  MarkMethodCallback(
      MethodIndex("Generate"),
      new grpc::internal::CallbackServerStreamingHandler<
          ReceivedRequest<v1::GenerateRequest>, v1::GenerateResponse>(
          [this](grpc::CallbackServerContext* context,
                 const ReceivedRequest<v1::GenerateRequest>* request) {
            return Generate(context, request);
          }));
  MarkMethodCallback(
      MethodIndex("Tokenize"),
      new UnaryHandler<v1::TokenizeRequest, v1::TokenizeResponse>(
          [this](grpc::CallbackServerContext* context,
                 const ReceivedRequest<v1::TokenizeRequest>* request,
                 v1::TokenizeResponse* reply) {
            return Tokenize(context, request, reply);
          }));
  MarkMethodCallback(
      MethodIndex("Detokenize"),
      new UnaryHandler<v1::DetokenizeRequest, v1::DetokenizeResponse>(
          [this](grpc::CallbackServerContext* context,
                 const ReceivedRequest<v1::DetokenizeRequest>* request,
                 v1::DetokenizeResponse* reply) {
            return Detokenize(context, request, reply);
          }));
  MarkMethodCallback(
      MethodIndex("GetModelInfo"),
      new UnaryHandler<v1::GetModelInfoRequest, v1::ModelInfo>(
          [this](grpc::CallbackServerContext* context,
                 const ReceivedRequest<v1::GetModelInfoRequest>* request,
                 v1::ModelInfo* reply) {
            return GetModelInfo(context, request, reply);
          }));
}

template <typename Message>
absl::Status InferenceService::Receive(
    const grpc::CallbackServerContext& context,
    const ReceivedRequest<Message>& request) const {
  if (parts_.keys != nullptr) {
    MOE_RETURN_IF_ERROR(
        parts_.keys->Authenticate(Authorization(context)).status());
  }
  return request.parse_status;
}

grpc::ServerWriteReactor<v1::GenerateResponse>* InferenceService::Generate(
    grpc::CallbackServerContext* context,
    const ReceivedRequest<v1::GenerateRequest>* received) {
  const absl::Time arrived = absl::Now();
  std::optional<ApiKeys::Lease> key;
  if (parts_.keys != nullptr) {
    absl::StatusOr<ApiKeys::Lease> admitted =
        parts_.keys->Admit(Authorization(*context), arrived);
    if (!admitted.ok()) {
      return new RejectedWriter(admitted.status(), parts_.metrics, arrived);
    }
    key.emplace(*std::move(admitted));
  }
  if (!received->parse_status.ok()) {
    return new RejectedWriter(received->parse_status, parts_.metrics, arrived);
  }
  const v1::GenerateRequest& request = received->message;
  absl::StatusOr<v1::RouterGenerateRequest> router_request =
      ToRouterRequest(request, config_, parts_.tokenizer, max_prompt_bytes_);
  if (!router_request.ok())
    return new RejectedWriter(router_request.status(), parts_.metrics, arrived);
  absl::StatusOr<std::string> id = parts_.ids.Claim(request.request_id());
  if (!id.ok()) return new RejectedWriter(id.status(), parts_.metrics, arrived);
  router_request->set_request_id(*id);
  auto* call = new GenerateCall(
      parts_, context, *std::move(router_request),
      std::vector<std::string>(request.stop().begin(), request.stop().end()),
      std::move(key), arrived);
  call->Begin();
  return call;
}

grpc::ServerUnaryReactor* InferenceService::Tokenize(
    grpc::CallbackServerContext* context,
    const ReceivedRequest<v1::TokenizeRequest>* received,
    v1::TokenizeResponse* reply) {
  if (absl::Status ready = Receive(*context, *received); !ready.ok()) {
    return FinishUnary(context, ready);
  }
  const v1::TokenizeRequest& request = received->message;
  if (absl::Status size =
          CheckPromptBytes("text", request.text(), max_prompt_bytes_);
      !size.ok()) {
    return FinishUnary(context, size);
  }
  auto* call = new AdmittedUnaryCall(
      parts_.admission, [this, &request, reply]() -> absl::Status {
        absl::StatusOr<std::vector<int32_t>> ids =
            request.add_special_tokens()
                ? parts_.tokenizer.EncodePrompt(request.text())
                : parts_.tokenizer.Encode(request.text());
        if (!ids.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat("text: ", ids.status().message()));
        }
        reply->mutable_token_ids()->Add(ids->begin(), ids->end());
        return absl::OkStatus();
      });
  call->Begin();
  return call;
}

grpc::ServerUnaryReactor* InferenceService::Detokenize(
    grpc::CallbackServerContext* context,
    const ReceivedRequest<v1::DetokenizeRequest>* received,
    v1::DetokenizeResponse* reply) {
  if (absl::Status ready = Receive(*context, *received); !ready.ok()) {
    return FinishUnary(context, ready);
  }
  const auto& ids = received->message.token_ids();
  for (int i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= config_.vocab_size) {
      return FinishUnary(context,
                         absl::InvalidArgumentError(absl::StrCat(
                             "token_ids: id ", ids[i], " at index ", i,
                             " is outside [0, ", config_.vocab_size, ")")));
    }
  }
  auto* call = new AdmittedUnaryCall(
      parts_.admission, [this, &ids, reply]() -> absl::Status {
        absl::StatusOr<std::string> text = parts_.tokenizer.Decode(
            {ids.data(), static_cast<size_t>(ids.size())});
        if (!text.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat("token_ids: ", text.status().message()));
        }
        reply->set_text(*std::move(text));
        return absl::OkStatus();
      });
  call->Begin();
  return call;
}

grpc::ServerUnaryReactor* InferenceService::GetModelInfo(
    grpc::CallbackServerContext* context,
    const ReceivedRequest<v1::GetModelInfoRequest>* received,
    v1::ModelInfo* reply) {
  if (absl::Status ready = Receive(*context, *received); !ready.ok()) {
    return FinishUnary(context, ready);
  }
  reply->set_name(model_name_);
  reply->set_architecture(ArchitectureName(config_.architecture));
  reply->set_num_layers(config_.num_layers);
  reply->set_num_experts(config_.num_experts);
  reply->set_top_k(config_.top_k);
  reply->set_hidden_size(config_.hidden_size);
  reply->set_vocab_size(config_.vocab_size);
  reply->set_context_length(config_.max_position_embeddings);
  reply->set_weight_dtype(config_.weight_format == WeightFormat::kFp8 ? "fp8"
                                                                      : "bf16");
  reply->set_bos_token_id(config_.bos_token_id);
  reply->mutable_eos_token_ids()->Add(config_.eos_token_ids.begin(),
                                      config_.eos_token_ids.end());

  // The placement version is the routers' to tell.
  struct StatusCall {
    grpc::ClientContext context;
    v1::RouterStatusRequest request;
    v1::RouterStatus status;
  };
  auto* call = new StatusCall;
  call->context.set_deadline(std::min(
      context->deadline(), std::chrono::system_clock::now() + kStatusTimeout));
  const RouterPool::Lease lease = parts_.routers.Acquire();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  lease.stub->async()->GetStatus(
      &call->context, &call->request, &call->status,
      [this, call, lease, reactor, reply](grpc::Status status) {
        const std::unique_ptr<StatusCall> done(call);
        parts_.routers.Release(lease.index);
        if (!status.ok()) {
          reactor->Finish(grpc::Status(
              status.error_code(),
              absl::StrCat("router ", parts_.routers.address(lease.index), ": ",
                           status.error_message())));
          return;
        }
        reply->set_placement_version(call->status.placement_version());
        reactor->Finish(grpc::Status::OK);
      });
  return reactor;
}

}  // namespace moe

#include "sdk/cpp/client.h"

#include <utility>

#include "absl/time/clock.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "rpc/grpc_status.h"

namespace moe::client {
namespace {

// Attaches a call's context to its cancel token for one attempt.
class CancelScope {
 public:
  CancelScope(CancelToken* token, grpc::ClientContext* context)
      : token_(token), attached_(token == nullptr || token->Attach(context)) {}
  ~CancelScope() {
    if (token_ != nullptr && attached_) token_->Detach();
  }
  CancelScope(const CancelScope&) = delete;
  CancelScope& operator=(const CancelScope&) = delete;

  // False when the token was cancelled before the attempt started.
  bool attached() const { return attached_; }

 private:
  CancelToken* token_;
  bool attached_;
};

absl::Status CancelledByCaller() {
  return absl::CancelledError("cancelled by the caller");
}

}  // namespace

v1::GenerateRequest MakeGenerateRequest(const std::string& prompt,
                                        const GenerateParams& params) {
  v1::GenerateRequest request;
  request.set_text(prompt);
  request.set_max_tokens(params.max_tokens);
  if (params.temperature) request.set_temperature(*params.temperature);
  if (params.top_p) request.set_top_p(*params.top_p);
  request.set_top_k(params.top_k);
  if (params.seed) request.set_seed(*params.seed);
  for (const std::string& stop : params.stop) request.add_stop(stop);
  request.set_ignore_eos(params.ignore_eos);
  return request;
}

Client::Client(const std::string& address, ClientOptions options)
    : Client(grpc::CreateChannel(address,
                                 options.credentials != nullptr
                                     ? options.credentials
                                     : grpc::InsecureChannelCredentials()),
             options) {}

void Client::Authorize(grpc::ClientContext& context) const {
  if (!options_.api_key.empty()) {
    context.AddMetadata("authorization", "Bearer " + options_.api_key);
  }
}

Client::Client(std::shared_ptr<grpc::Channel> channel, ClientOptions options)
    : options_(std::move(options)),
      stub_(v1::Inference::NewStub(std::move(channel))) {}

absl::Time Client::DeadlineOf(const CallOptions& call) const {
  return absl::Now() + (call.timeout > absl::ZeroDuration()
                            ? call.timeout
                            : options_.default_timeout);
}

absl::StatusOr<GenerateResult> Client::Generate(
    const v1::GenerateRequest& request, const ChunkCallback& on_chunk,
    const CallOptions& call) {
  const absl::Time deadline = DeadlineOf(call);
  GenerateResult result;
  const absl::Status status =
      CallWithRetries(options_.retry, deadline, call.cancel, [&] {
        return GenerateOnce(request, on_chunk, deadline, call.cancel, result);
      });
  if (!status.ok()) return status;
  return result;
}

AttemptResult Client::GenerateOnce(const v1::GenerateRequest& request,
                                   const ChunkCallback& on_chunk,
                                   absl::Time deadline, CancelToken* cancel,
                                   GenerateResult& result) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(deadline));
  Authorize(context);
  CancelScope cancel_scope(cancel, &context);
  if (!cancel_scope.attached()) return {CancelledByCaller()};
  std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>> reader =
      stub_->Generate(&context, request);
  AttemptResult attempt;
  bool finished = false;
  bool stopped = false;
  v1::GenerateResponse response;
  while (reader->Read(&response)) {
    attempt.delivered_output = true;
    if (response.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
      finished = true;
      result.request_id = response.request_id();
      result.finish_reason = response.finish_reason();
      result.usage = response.usage();
    }
    if (!on_chunk(response) && !finished) {
      stopped = true;
      context.TryCancel();
      // Finish() waits for the reads to end; after TryCancel they end soon.
      while (reader->Read(&response)) {
      }
      break;
    }
  }
  attempt.status = FromGrpcStatus(reader->Finish());
  if (stopped ||
      (!attempt.status.ok() && cancel != nullptr && cancel->cancelled())) {
    attempt.status = CancelledByCaller();
  } else if (attempt.status.ok() && !finished) {
    attempt.status =
        absl::UnknownError("the Generate stream ended without a finish reason");
  }
  return attempt;
}

absl::StatusOr<Completion> Client::GenerateText(const std::string& prompt,
                                                const GenerateParams& params,
                                                const CallOptions& call) {
  Completion completion;
  absl::StatusOr<GenerateResult> result = Generate(
      MakeGenerateRequest(prompt, params),
      [&completion](const v1::GenerateResponse& response) {
        completion.text += response.text();
        completion.token_ids.insert(completion.token_ids.end(),
                                    response.token_ids().begin(),
                                    response.token_ids().end());
        return true;
      },
      call);
  if (!result.ok()) return result.status();
  completion.result = *std::move(result);
  return completion;
}

template <typename Request, typename Response>
absl::Status Client::CallUnary(UnaryMethod<Request, Response> method,
                               const Request& request, Response* response,
                               const CallOptions& call) {
  const absl::Time deadline = DeadlineOf(call);
  return CallWithRetries(
      options_.retry, deadline, call.cancel, [&]() -> AttemptResult {
        grpc::ClientContext context;
        context.set_deadline(absl::ToChronoTime(deadline));
        Authorize(context);
        CancelScope cancel_scope(call.cancel, &context);
        if (!cancel_scope.attached()) return {CancelledByCaller()};
        const grpc::Status status =
            (stub_.get()->*method)(&context, request, response);
        if (!status.ok() && call.cancel != nullptr &&
            call.cancel->cancelled()) {
          return {CancelledByCaller()};
        }
        return {FromGrpcStatus(status)};
      });
}

absl::StatusOr<std::vector<int32_t>> Client::Tokenize(const std::string& text,
                                                      bool add_special_tokens,
                                                      const CallOptions& call) {
  v1::TokenizeRequest request;
  request.set_text(text);
  request.set_add_special_tokens(add_special_tokens);
  v1::TokenizeResponse response;
  const absl::Status status =
      CallUnary(&v1::Inference::Stub::Tokenize, request, &response, call);
  if (!status.ok()) return status;
  return std::vector<int32_t>(response.token_ids().begin(),
                              response.token_ids().end());
}

absl::StatusOr<std::string> Client::Detokenize(
    absl::Span<const int32_t> token_ids, const CallOptions& call) {
  v1::DetokenizeRequest request;
  request.mutable_token_ids()->Add(token_ids.begin(), token_ids.end());
  v1::DetokenizeResponse response;
  const absl::Status status =
      CallUnary(&v1::Inference::Stub::Detokenize, request, &response, call);
  if (!status.ok()) return status;
  return std::move(*response.mutable_text());
}

absl::StatusOr<v1::ModelInfo> Client::GetModelInfo(const CallOptions& call) {
  v1::ModelInfo response;
  const absl::Status status =
      CallUnary(&v1::Inference::Stub::GetModelInfo, v1::GetModelInfoRequest(),
                &response, call);
  if (!status.ok()) return status;
  return response;
}

}  // namespace moe::client

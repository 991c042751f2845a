#ifndef MOE_SDK_CPP_CLIENT_H_
#define MOE_SDK_CPP_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "grpcpp/channel.h"
#include "grpcpp/security/credentials.h"
#include "moe/v1/inference.grpc.pb.h"
#include "sdk/cpp/cancel_token.h"
#include "sdk/cpp/retry.h"

namespace moe::client {

struct ClientOptions {
  // Deadline of a call (retries included) that sets none of its own.
  absl::Duration default_timeout = absl::Minutes(5);
  RetryOptions retry;
  // How the client reaches the gateway: grpc::SslCredentials with the
  // cluster's CA (and a client certificate where the gateway asks for
  // one); null: plaintext.
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  // Sent as "authorization: Bearer KEY" where the gateway checks API keys.
  std::string api_key;
};

struct CallOptions {
  // The whole call, retries included, must end within this time; zero: the
  // client's default_timeout. Past it the call fails with DEADLINE_EXCEEDED.
  absl::Duration timeout = absl::ZeroDuration();
  CancelToken* cancel = nullptr;  // optional; see CancelToken
};

// The sampling parameters of a generation; see GenerateRequest in
// protos/moe/v1/inference.proto for their ranges. Unset: the server's default.
struct GenerateParams {
  int max_tokens = 16;
  std::optional<float> temperature;
  std::optional<float> top_p;
  int top_k = 0;  // 0: all tokens
  std::optional<int64_t> seed;
  std::vector<std::string> stop;
  bool ignore_eos = false;
};

// A generation request for a text prompt.
v1::GenerateRequest MakeGenerateRequest(const std::string& prompt,
                                        const GenerateParams& params);

// How a generation ended (from its last response).
struct GenerateResult {
  std::string request_id;
  v1::FinishReason finish_reason = v1::FINISH_REASON_UNSPECIFIED;
  v1::Usage usage;
};

struct Completion {
  std::string text;
  std::vector<int32_t> token_ids;
  GenerateResult result;
};

// Called with every response of a Generate stream, in order, the last one
// (with finish reason and usage) included. Returning false cancels the
// generation: Generate then returns CANCELLED.
using ChunkCallback = std::function<bool(const v1::GenerateResponse&)>;

// A client of moe.v1.Inference (the gateway). Thread-safe: calls may run
// concurrently. Calls that fail with UNAVAILABLE are retried with backoff
// (ClientOptions::retry), a Generate stream only until its first response:
// after that a retry would hand the caller the same text twice.
class Client {
 public:
  // `address` is host:port; the connection is plaintext, made lazily.
  explicit Client(const std::string& address, ClientOptions options = {});
  Client(std::shared_ptr<grpc::Channel> channel, ClientOptions options);

  absl::StatusOr<GenerateResult> Generate(const v1::GenerateRequest& request,
                                          const ChunkCallback& on_chunk,
                                          const CallOptions& call = {});
  // Generates and returns the whole text.
  absl::StatusOr<Completion> GenerateText(const std::string& prompt,
                                          const GenerateParams& params,
                                          const CallOptions& call = {});

  absl::StatusOr<std::vector<int32_t>> Tokenize(const std::string& text,
                                                bool add_special_tokens,
                                                const CallOptions& call = {});
  absl::StatusOr<std::string> Detokenize(absl::Span<const int32_t> token_ids,
                                         const CallOptions& call = {});
  absl::StatusOr<v1::ModelInfo> GetModelInfo(const CallOptions& call = {});

 private:
  // Adds the API key, when there is one.
  void Authorize(grpc::ClientContext& context) const;
  // One attempt of a Generate call; fills `result` when the stream finishes.
  AttemptResult GenerateOnce(const v1::GenerateRequest& request,
                             const ChunkCallback& on_chunk, absl::Time deadline,
                             CancelToken* cancel, GenerateResult& result);

  template <typename Request, typename Response>
  using UnaryMethod = grpc::Status (v1::Inference::Stub::*)(
      grpc::ClientContext*, const Request&, Response*);

  template <typename Request, typename Response>
  absl::Status CallUnary(UnaryMethod<Request, Response> method,
                         const Request& request, Response* response,
                         const CallOptions& call);
  absl::Time DeadlineOf(const CallOptions& call) const;

  ClientOptions options_;
  std::unique_ptr<v1::Inference::Stub> stub_;
};

}  // namespace moe::client

#endif  // MOE_SDK_CPP_CLIENT_H_

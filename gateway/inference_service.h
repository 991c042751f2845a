#ifndef MOE_GATEWAY_INFERENCE_SERVICE_H_
#define MOE_GATEWAY_INFERENCE_SERVICE_H_

#include <cstddef>
#include <string>

#include "core/model/model_config.h"
#include "gateway/generate_call.h"
#include "gateway/received_request.h"
#include "moe/v1/inference.grpc.pb.h"

namespace moe {

// moe.v1.Inference: validates and tokenizes requests, then relays
// generation to the least loaded router (see GenerateCall). Holds no state
// of its own beyond the requests in flight. Every method receives its
// request as a ReceivedRequest, so bytes that do not parse (text that is not
// UTF-8 among them) get INVALID_ARGUMENT naming the field.
class InferenceService final : public v1::Inference::CallbackService {
 public:
  // `model_name`: the checkpoint directory's name. Prompts of more than
  // `max_prompt_bytes` are refused before they are tokenized.
  InferenceService(const ModelConfig& config, std::string model_name,
                   size_t max_prompt_bytes, GatewayParts parts);

 private:
  grpc::ServerWriteReactor<v1::GenerateResponse>* Generate(
      grpc::CallbackServerContext* context,
      const ReceivedRequest<v1::GenerateRequest>* request);
  grpc::ServerUnaryReactor* Tokenize(
      grpc::CallbackServerContext* context,
      const ReceivedRequest<v1::TokenizeRequest>* request,
      v1::TokenizeResponse* reply);
  grpc::ServerUnaryReactor* Detokenize(
      grpc::CallbackServerContext* context,
      const ReceivedRequest<v1::DetokenizeRequest>* request,
      v1::DetokenizeResponse* reply);
  grpc::ServerUnaryReactor* GetModelInfo(
      grpc::CallbackServerContext* context,
      const ReceivedRequest<v1::GetModelInfoRequest>* request,
      v1::ModelInfo* reply);

  // Serves each method with the handler above in place of the generated one.
  void ServeReceivedRequests();

  // OK when the call carries a known key (or none is asked for) and its
  // request parsed.
  template <typename Message>
  absl::Status Receive(const grpc::CallbackServerContext& context,
                       const ReceivedRequest<Message>& request) const;

  const ModelConfig& config_;
  const std::string model_name_;
  const size_t max_prompt_bytes_;
  const GatewayParts parts_;
};

}  // namespace moe

#endif  // MOE_GATEWAY_INFERENCE_SERVICE_H_

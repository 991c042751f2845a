#ifndef MOE_GATEWAY_INFERENCE_SERVICE_H_
#define MOE_GATEWAY_INFERENCE_SERVICE_H_

#include <string>

#include "core/model/model_config.h"
#include "gateway/generate_call.h"
#include "moe/v1/inference.grpc.pb.h"

namespace moe {

// moe.v1.Inference: validates and tokenizes requests, then relays
// generation to the least loaded router (see GenerateCall). Holds no state
// of its own beyond the requests in flight.
class InferenceService final : public v1::Inference::CallbackService {
 public:
  // `model_name`: the checkpoint directory's name.
  InferenceService(const ModelConfig& config, std::string model_name,
                   GatewayParts parts)
      : config_(config), model_name_(std::move(model_name)), parts_(parts) {}

  grpc::ServerWriteReactor<v1::GenerateResponse>* Generate(
      grpc::CallbackServerContext* context,
      const v1::GenerateRequest* request) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* context,
                                     const v1::TokenizeRequest* request,
                                     v1::TokenizeResponse* reply) override;
  grpc::ServerUnaryReactor* Detokenize(grpc::CallbackServerContext* context,
                                       const v1::DetokenizeRequest* request,
                                       v1::DetokenizeResponse* reply) override;
  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* context,
                                         const v1::GetModelInfoRequest* request,
                                         v1::ModelInfo* reply) override;

 private:
  // OK when no keys are asked for or the call carries a known one.
  absl::Status Authenticate(const grpc::CallbackServerContext& context) const;

  const ModelConfig& config_;
  const std::string model_name_;
  const GatewayParts parts_;
};

}  // namespace moe

#endif  // MOE_GATEWAY_INFERENCE_SERVICE_H_

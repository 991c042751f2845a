#ifndef MOE_ROUTER_SERVICE_ROUTER_RPC_SERVICE_H_
#define MOE_ROUTER_SERVICE_ROUTER_RPC_SERVICE_H_

#include <atomic>
#include <cstdint>

#include "moe/v1/router.grpc.pb.h"
#include "router_service/batch_engine.h"
#include "router_service/grpc_expert_dispatch.h"
#include "router_service/load_window.h"
#include "rpc/admin_access.h"

namespace moe {

// moe.v1.Router over a BatchEngine. Generate streams each step's tokens as
// they come; a client that cancels or goes away cancels its request, and
// the call's deadline becomes the request's.
class RouterRpcService final : public v1::Router::CallbackService {
 public:
  // `remote` (may be null) reports the expert workers in GetStatus. Once
  // `draining` (may be null) is set, new Generate calls are refused with
  // UNAVAILABLE; those running go on.
  // `admin` says who may Cancel.
  RouterRpcService(BatchEngine& engine, const ModelConfig& config,
                   const GrpcExpertDispatch* remote, const AdminAccess& admin,
                   const std::atomic<bool>* draining = nullptr);

  grpc::ServerWriteReactor<v1::RouterGenerateResponse>* Generate(
      grpc::CallbackServerContext* context,
      const v1::RouterGenerateRequest* request) override;
  grpc::ServerUnaryReactor* Cancel(grpc::CallbackServerContext* context,
                                   const v1::CancelRequest* request,
                                   v1::CancelResponse* reply) override;
  grpc::ServerUnaryReactor* GetStatus(grpc::CallbackServerContext* context,
                                      const v1::RouterStatusRequest* request,
                                      v1::RouterStatus* reply) override;
  grpc::ServerUnaryReactor* GetLoad(grpc::CallbackServerContext* context,
                                    const v1::LoadRequest* request,
                                    v1::LoadReport* reply) override;

  // What was routed lately, sampled every second (ten minutes kept).
  const LoadWindow& load_window() const { return load_; }

 private:
  BatchEngine& engine_;
  const ModelConfig& config_;
  const GrpcExpertDispatch* remote_;
  const AdminAccess& admin_;
  const std::atomic<bool>* const draining_;
  std::atomic<int64_t> next_id_{1};
  LoadWindow load_{absl::Minutes(10)};
  LoadRecorder load_recorder_;  // last: it reads the members above
};

}  // namespace moe

#endif  // MOE_ROUTER_SERVICE_ROUTER_RPC_SERVICE_H_

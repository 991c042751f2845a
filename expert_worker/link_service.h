#ifndef MOE_EXPERT_WORKER_LINK_SERVICE_H_
#define MOE_EXPERT_WORKER_LINK_SERVICE_H_

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/message_link.h"
#include "core/model_config.h"
#include "expert_worker/compute_queue.h"
#include "expert_worker/compute_request.h"
#include "moe/v1/expert.grpc.pb.h"

namespace moe {

// moe.v1.ExpertLink: activation links to this worker. A Stream call is
// served on its own handler thread for as long as it lasts; an NCCL link
// (GPU workers only) on a thread of its own until it breaks or its router
// opens a new one, which replaces it.
class ExpertLinkService final : public v1::ExpertLink::Service {
 public:
  // `device`: the worker's GPU, or -1 on the CPU.
  ExpertLinkService(WorkerIdentity identity, const ModelConfig& config,
                    ComputeQueue& queue, int device)
      : identity_(std::move(identity)),
        config_(config),
        queue_(queue),
        device_(device) {}
  ~ExpertLinkService() override;

  grpc::Status Stream(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::LinkFrame, v1::LinkFrame>* stream) override;
  grpc::Status OpenNccl(grpc::ServerContext* context,
                        const v1::NcclLinkRequest* request,
                        v1::NcclLinkReply* reply) override;

 private:
  // An NCCL link and the thread that serves it.
  struct NcclLink {
    std::unique_ptr<MessageLink> link;
    std::thread server;
  };
  // Closes the link and waits for its server to end.
  static void Retire(NcclLink& link);

  const WorkerIdentity identity_;
  const ModelConfig& config_;
  ComputeQueue& queue_;
  const int device_;
  std::mutex nccl_mutex_;                       // one OpenNccl at a time
  std::map<std::string, NcclLink> nccl_links_;  // by router id
};

}  // namespace moe

#endif  // MOE_EXPERT_WORKER_LINK_SERVICE_H_

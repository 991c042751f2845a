#ifndef MOE_EXPERT_WORKER_LINK_SERVICE_H_
#define MOE_EXPERT_WORKER_LINK_SERVICE_H_

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/model/model_config.h"
#include "expert_worker/compute_queue.h"
#include "expert_worker/compute_request.h"
#include "link/announced_link.h"
#include "moe/v1/expert.grpc.pb.h"

namespace moe {

// moe.v1.ExpertLink: activation links to this worker, each served on its
// Stream call's handler thread for as long as the call lasts. OpenNccl (GPU
// workers only) joins the NCCL pipe of a router's link and keeps it until
// the router's Stream call that names the link comes to announce its
// payloads (or, when none came within the join timeout, drops it); the link
// ends with that call (the router closed it, or died).
class ExpertLinkService final : public v1::ExpertLink::Service {
 public:
  // Joins this worker's end of the NCCL pipe `request` describes, giving up
  // once `abandoned` says the router did.
  using NcclJoiner = std::function<absl::StatusOr<std::unique_ptr<PayloadPipe>>(
      const v1::NcclLinkRequest& request, std::function<bool()> abandoned)>;

  // `join_nccl`: NcclJoinerFor(the worker's GPU), or null on the CPU, which
  // refuses NCCL links.
  ExpertLinkService(WorkerIdentity identity, const ModelConfig& config,
                    ComputeQueue& queue, NcclJoiner join_nccl)
      : identity_(std::move(identity)),
        config_(config),
        queue_(queue),
        join_nccl_(std::move(join_nccl)) {}

  // Joins as rank 1 (the router is rank 0) on CUDA device `device`.
  static NcclJoiner NcclJoinerFor(int device);

  grpc::Status Stream(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::LinkFrame, v1::LinkFrame>* stream) override;
  grpc::Status OpenNccl(grpc::ServerContext* context,
                        const v1::NcclLinkRequest* request,
                        v1::NcclLinkReply* reply) override;

 private:
  struct JoinedPipe {
    std::unique_ptr<PayloadPipe> pipe;
    absl::Duration payload_timeout;  // the router's join timeout
    absl::Time take_by;              // dropped after, untaken
  };
  // The NCCL pipe joined for `link_id`, now taken by its Stream call.
  absl::StatusOr<JoinedPipe> TakeNcclPipe(const std::string& link_id);
  // Moves the pipes whose Stream call never came out of nccl_pipes_, to be
  // closed by the caller once unlocked (closing one aborts NCCL).
  void DropOverdueLocked(std::vector<JoinedPipe>& dropped);

  const WorkerIdentity identity_;
  const ModelConfig& config_;
  ComputeQueue& queue_;
  const NcclJoiner join_nccl_;
  std::mutex pipes_mutex_;
  // Joined, waiting for their Stream call; by link id.
  std::map<std::string, JoinedPipe> nccl_pipes_;
};

}  // namespace moe

#endif  // MOE_EXPERT_WORKER_LINK_SERVICE_H_

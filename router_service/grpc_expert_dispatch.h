#ifndef MOE_ROUTER_SERVICE_GRPC_EXPERT_DISPATCH_H_
#define MOE_ROUTER_SERVICE_GRPC_EXPERT_DISPATCH_H_

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/placement/placement_plan.h"
#include "engine/expert_dispatch.h"
#include "link/worker_link.h"
#include "moe/v1/expert.grpc.pb.h"
#include "router_service/worker_health.h"

namespace moe {

struct WorkerEndpoint {
  std::string id;
  std::string address;  // host:port
};

// Parses "id=host:port,id=host:port" (the --workers flag).
absl::StatusOr<std::vector<WorkerEndpoint>> ParseWorkerEndpoints(
    const std::string& spec);

// Router-side counters of one worker.
struct WorkerCallStats {
  std::string id;
  std::string address;
  int64_t calls = 0;
  int64_t failed_calls = 0;
  int64_t rows_sent = 0;
  int64_t links_opened = 0;  // activation links; 0 with Compute RPCs
  // Health: down after a failed call until a probe finds it serving the
  // plan again; rows of its failed calls sent to other holders instead.
  bool down = false;
  int64_t rows_failed_over = 0;
  int64_t recoveries = 0;
  double total_round_trip_us = 0;
  // As the worker reports it: waiting in its queue, and computing.
  double total_worker_wait_us = 0;
  double total_worker_compute_us = 0;
};

// How a layer's rows reach the workers: one Compute RPC per call, or
// messages on a long-lived activation link per worker (a gRPC stream; NCCL
// for GPU workers, with the stream for those on a CPU).
enum class ActivationLinkKind { kRpc, kStream, kNccl };

// Parses "rpc", "stream" or "nccl" (the --activation-link flag).
absl::StatusOr<ActivationLinkKind> ParseActivationLinkKind(
    const std::string& name);

// Experts on expert workers, placed by a plan. Each layer's rows go out as
// one Compute call per worker that holds any of their experts, all calls in
// flight at once; the partial sums come back and are added up. A row whose
// expert has replicas goes to the live replica with the fewest rows
// outstanding (relative to its speed).
//
// Failover: a worker whose call fails is marked down (WorkerHealth) and
// its rows' assignments go again, within the same step, to other live
// holders of the same experts; only an assignment whose expert has no live
// holder left fails its row, with UNAVAILABLE naming the expert and the
// workers tried. A down worker is probed until it serves the plan again,
// then used again.
class GrpcExpertDispatch : public ExpertDispatch {
 public:
  struct Options {
    v1::ActivationDType activation_dtype = v1::ACTIVATION_DTYPE_FP32;
    // A call not answered in this time fails its rows with DEADLINE_EXCEEDED
    // naming the worker, so a stuck worker never hangs a request.
    absl::Duration call_timeout = absl::Seconds(10);
    ActivationLinkKind link = ActivationLinkKind::kRpc;
    // The router's GPU, for NCCL links.
    int nccl_device = -1;
    // How long joining an NCCL link may take.
    absl::Duration link_connect_timeout = absl::Seconds(10);
    // How often a down worker is asked whether it serves again.
    absl::Duration probe_interval = absl::Milliseconds(200);
  };

  // Every worker of the plan needs an endpoint, and every endpoint a worker.
  static absl::StatusOr<std::unique_ptr<GrpcExpertDispatch>> Connect(
      const PlacementPlan& plan, int hidden_size,
      const std::vector<WorkerEndpoint>& endpoints, const Options& options);

  // Waits (up to `timeout`) until every worker answers, and checks that it
  // serves this plan: same version and row width, and every expert the plan
  // gives it loaded.
  absl::Status AwaitWorkers(absl::Duration timeout);

  // Sends every worker's call of the layer at once and returns; the
  // pending computation adds up the partial sums when waited for.
  std::unique_ptr<PendingExperts> Start(const ExpertBatch& batch,
                                        float* out) override;

  int placement_version() const { return plan_.version; }
  // Whether every expert of the plan has a holder that is up.
  bool EveryExpertHeld() const;
  std::vector<WorkerCallStats> Stats() const;

 private:
  struct Worker {
    WorkerEndpoint endpoint;
    double speed = 1.0;
    std::unique_ptr<v1::ExpertWorker::Stub> stub;
    std::unique_ptr<v1::ExpertLink::Stub> link_stub;
    std::unique_ptr<WorkerLink> link;  // null: Compute RPCs
    std::atomic<int64_t> outstanding_rows{0};
  };
  // One (row, expert) assignment on its way, with the workers that failed
  // it in this step and the last failure.
  struct Routed {
    int32_t row;
    int32_t expert;
    float weight;
    std::vector<int> tried;
    absl::Status last_failure;
  };
  // What a layer's calls (and their retries) read: the step's rows.
  struct Rows {
    int layer;
    const float* x;
    int64_t n;
    std::vector<absl::Time> deadlines;  // per row; empty: none
  };
  struct Call;
  class Pending;

  GrpcExpertDispatch(PlacementPlan plan, int hidden_size, Options options)
      : plan_(std::move(plan)), hidden_size_(hidden_size), options_(options) {}

  absl::Status CheckWorker(const Worker& worker,
                           const v1::WorkerDescription& description) const;
  // Describe, then CheckWorker: OK when the worker serves this plan.
  absl::Status Probe(const Worker& worker, absl::Duration timeout) const;
  // The holder of (layer, expert), not among `tried`, that should take one
  // more row: a live one if any (the least loaded), else one that is down
  // (it may be back before a probe has seen it); -1 when all were tried.
  int PickHolder(int layer, int expert, const std::vector<int>& tried,
                 const std::vector<int64_t>& rows_this_call) const;
  // Why `routed` cannot be sent anywhere.
  absl::Status NoHolderError(int layer, const Routed& routed) const;
  // Sends each assignment to a live holder, grouped into one call per
  // worker, and returns the calls in flight; `out` gets their sums when
  // waited for. Assignments with no live holder fail their rows there.
  std::unique_ptr<Pending> Send(std::shared_ptr<const Rows> rows,
                                std::vector<Routed> routed, float* out);
  absl::Status CallError(const Worker& worker, int layer,
                         const grpc::Status& status,
                         absl::Duration waited) const;
  // One finished call: its partial sums added into `out`; or, when it
  // failed, its assignments listed in `retry` (the worker marked down), or
  // its rows in `failures` when another worker cannot help; counted in the
  // worker's stats.
  void Collect(Call& call, int layer, float* out,
               std::vector<RowFailure>& failures, std::vector<Routed>& retry);

  const PlacementPlan plan_;
  const int hidden_size_;
  const Options options_;
  std::vector<std::unique_ptr<Worker>> workers_;  // in plan order
  std::unique_ptr<WorkerHealth> health_;
  mutable std::mutex stats_mutex_;
  std::vector<WorkerCallStats> stats_;
};

}  // namespace moe

#endif  // MOE_ROUTER_SERVICE_GRPC_EXPERT_DISPATCH_H_

#ifndef MOE_ROUTER_SERVICE_WORKER_REGISTRY_H_
#define MOE_ROUTER_SERVICE_WORKER_REGISTRY_H_

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/placement/placement_plan.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "link/worker_link.h"
#include "moe/v1/expert.grpc.pb.h"
#include "router_service/worker_health.h"
#include "rpc/keepalive.h"

namespace moe {

struct WorkerEndpoint {
  std::string id;
  // host:port, a gRPC target (dns:///NAME:PORT), or "ipv4:a:p,b:q" for
  // copies of the worker.
  std::string address;
};

// Parses "id=host:port,id=host:port" (the --workers flag). An id given
// several IPv4 addresses names copies of one worker, holding the same
// experts: they become one address, "ipv4:a.b.c.d:p,e.f.g.h:q", and the
// worker's calls are spread over them.
absl::StatusOr<std::vector<WorkerEndpoint>> ParseWorkerEndpoints(
    const std::string& spec);

// The (layer, expert) pairs a worker says it holds, sorted.
std::vector<std::pair<int, int>> ExpertsHeld(
    const v1::WorkerDescription& description);

// How a layer's rows reach the workers: one Compute RPC per call, or
// messages on a long-lived activation link per worker (a gRPC stream; NCCL
// for GPU workers, with the stream for those on a CPU).
enum class ActivationLinkKind { kRpc, kStream, kNccl };

// Parses "rpc", "stream" or "nccl" (the --activation-link flag).
absl::StatusOr<ActivationLinkKind> ParseActivationLinkKind(
    const std::string& name);

// How long loading or unloading experts on a worker may take: as long as
// reading them does.
inline constexpr absl::Duration kExpertLoadTimeout = absl::Minutes(10);

// How the router reaches its expert workers.
struct ExpertTierOptions {
  v1::ActivationDType activation_dtype = v1::ACTIVATION_DTYPE_FP32;
  // A call not answered in this time fails its rows with DEADLINE_EXCEEDED
  // naming the worker, so a stuck worker never hangs a request.
  absl::Duration call_timeout = absl::Seconds(10);
  ActivationLinkKind link = ActivationLinkKind::kRpc;
  // The router's GPU, for NCCL links.
  int nccl_device = -1;
  // How long joining an NCCL link may take.
  absl::Duration link_connect_timeout = absl::Seconds(10);
  // The router's credentials as the workers' client (TLS with its
  // certificate); null: plaintext.
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  // How often the router pings each worker (see rpc/keepalive.h).
  absl::Duration keepalive_interval = kDefaultKeepaliveInterval;
  // How often a down worker is asked whether it serves again.
  absl::Duration probe_interval = absl::Milliseconds(200);
  // Called as each Compute call ends (failed ones too), with the worker's
  // id and the call's round trip (may be null).
  std::function<void(const std::string& worker, absl::Duration round_trip)>
      on_call;
};

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

// One expert worker as the router reaches it.
struct RemoteWorker {
  WorkerEndpoint endpoint;
  std::string name;  // "expert worker ID at ADDRESS", for messages
  std::unique_ptr<v1::ExpertWorker::Stub> stub;
  std::unique_ptr<v1::ExpertLink::Stub> link_stub;
  std::unique_ptr<WorkerLink> link;  // null: Compute RPCs
  std::atomic<int64_t> outstanding_rows{0};
  std::shared_ptr<WorkerHealth::Watched> health;
  std::mutex stats_mutex;
  WorkerCallStats stats;  // guarded by stats_mutex

  bool up() const { return health->up(); }
};

// The expert workers a router knows, from start-up or joined since, with a
// channel, stubs and health each. Workers are shared: a plan being applied
// and calls in flight keep theirs while the registry forgets it.
class WorkerRegistry {
 public:
  // probe(worker): OK when the worker serves what the router expects of it;
  // called from the health prober's thread.
  WorkerRegistry(const ExpertTierOptions& options,
                 std::function<absl::Status(RemoteWorker&)> probe);

  // ALREADY_EXISTS when the id or the address is known.
  absl::StatusOr<std::shared_ptr<RemoteWorker>> Add(
      const WorkerEndpoint& endpoint);
  // Stops probing and forgets it; null when unknown.
  std::shared_ptr<RemoteWorker> Remove(const std::string& id);
  // Null when unknown.
  std::shared_ptr<RemoteWorker> Find(const std::string& id) const;
  // In the order they joined.
  std::vector<std::shared_ptr<RemoteWorker>> All() const;

  void MarkDown(RemoteWorker& worker, const absl::Status& why) {
    health_.MarkDown(*worker.health, why);
  }

  // Describe; with `wait_for_ready`, waits for the channel to connect.
  absl::StatusOr<v1::WorkerDescription> Describe(
      const RemoteWorker& worker, absl::Duration timeout,
      bool wait_for_ready = false) const;
  // LoadExperts (for plan `version`; 0: unchanged) or UnloadExperts.
  enum class Change { kLoad, kUnload };
  absl::StatusOr<v1::WorkerDescription> ChangeExperts(
      const RemoteWorker& worker, Change change,
      const std::vector<std::pair<int, int>>& experts, int version,
      absl::Duration timeout) const;

 private:
  const ExpertTierOptions options_;
  const std::function<absl::Status(RemoteWorker&)> probe_;
  grpc::ChannelArguments channel_args_;
  mutable std::mutex mutex_;
  std::vector<std::shared_ptr<RemoteWorker>> workers_;  // guarded by mutex_
  WorkerHealth health_;  // last: its prober reads the workers
};

}  // namespace moe

#endif  // MOE_ROUTER_SERVICE_WORKER_REGISTRY_H_

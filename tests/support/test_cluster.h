#ifndef MOE_TESTS_SUPPORT_TEST_CLUSTER_H_
#define MOE_TESTS_SUPPORT_TEST_CLUSTER_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "core/model/model_weights.h"
#include "core/placement/placement_plan.h"
#include "core/util/thread_pool.h"
#include "engine/model_runner.h"
#include "grpcpp/grpcpp.h"
#include "moe/v1/inference.grpc.pb.h"
#include "moe/v1/router.grpc.pb.h"
#include "router_service/grpc_expert_dispatch.h"
#include "tests/support/child_process.h"
#include "tests/support/test_models.h"

// A router and expert workers as real processes on 127.0.0.1, and what the
// cluster tests ask of them.
namespace moe::testing {

inline constexpr absl::Duration kStartTimeout = absl::Seconds(30);

struct Cluster {
  std::string model_dir;
  PlacementPlan plan;
  std::string plan_path;
  std::vector<std::unique_ptr<ChildProcess>> workers;
  std::vector<std::string> worker_addresses;
  std::unique_ptr<ChildProcess> router;
  std::string router_address;

  std::string WorkersFlag() const {
    std::vector<std::string> items;
    for (size_t i = 0; i < workers.size(); ++i) {
      items.push_back(
          absl::StrCat(plan.workers[i].id, "=", worker_addresses[i]));
    }
    return absl::StrJoin(items, ",");
  }
  std::vector<WorkerEndpoint> Endpoints() const {
    std::vector<WorkerEndpoint> endpoints;
    for (size_t i = 0; i < workers.size(); ++i) {
      endpoints.push_back({plan.workers[i].id, worker_addresses[i]});
    }
    return endpoints;
  }
};

// A plan (version `version`) for the spec's model on workers w0, w1, ...
// with room for slots[i] experts each and every expert on `copies` of them.
PlacementPlan PlanWithSlots(const TestModelSpec& spec,
                            const std::vector<int>& slots, int copies = 1,
                            int version = 1);

// Per test and process, e.g. /tmp/cluster_CancelEndsTheRequest_mixtral_w0.
std::string LogPrefix(const std::string& name);

// moe-expert-worker `id` of the cluster's model and plan on `listen`.
std::unique_ptr<ChildProcess> StartWorker(
    const Cluster& cluster, const std::string& id, const std::string& listen,
    const std::vector<std::string>& worker_flags = {});

// moe-expert-worker `id` of the cluster's model started without a plan,
// holding nothing, with room for `memory_bytes` of experts: one that joins.
std::unique_ptr<ChildProcess> StartEmptyWorker(const Cluster& cluster,
                                               const std::string& id,
                                               int64_t memory_bytes);

// moe-gateway in front of the cluster's router on 127.0.0.1 with `flags`,
// its address in `address`; a test failure (and null) when it does not
// start.
std::unique_ptr<ChildProcess> StartGateway(
    const Cluster& cluster, const std::vector<std::string>& flags,
    std::string& address);

// A greedy generation of 4 tokens through the gateway at `address`,
// reached with `credentials`; its status (4 tokens are expected when OK).
grpc::Status GenerateThroughGateway(
    const std::string& address,
    const std::shared_ptr<grpc::ChannelCredentials>& credentials);

// Writes `plan`, starts its workers on the spec's model and a router in
// front of them.
void StartCluster(const TestModelSpec& spec, const PlacementPlan& plan,
                  const std::vector<std::string>& router_flags,
                  Cluster& cluster,
                  const std::vector<std::string>& worker_flags = {});

struct StreamResult {
  grpc::Status status;
  std::vector<int32_t> tokens;
  v1::RouterGenerateResponse last;
  absl::Duration elapsed;
};

// Runs one Generate call to its end; `on_first` runs after the first tokens.
StreamResult RunGenerate(v1::Router::Stub& stub,
                         const v1::RouterGenerateRequest& request,
                         absl::Duration deadline = absl::Seconds(60),
                         const std::function<void()>& on_first = nullptr);

// Runs `requests` at once, a client thread each; `on_first` runs once, on
// the thread of the first stream whose first tokens came.
std::vector<StreamResult> RunConcurrently(
    v1::Router::Stub& stub,
    const std::vector<v1::RouterGenerateRequest>& requests,
    const std::function<void()>& on_first = nullptr);

// The embedded engine on a checkpoint: what a cluster's tokens are checked
// against.
class EngineReference {
 public:
  explicit EngineReference(const std::string& model_dir);

  ModelRunner& runner() { return *runner_; }
  // Every stream ended OK with the engine's greedy tokens for its request
  // (which must be greedy and ignore EOS).
  void ExpectItsTokens(const std::vector<StreamResult>& results,
                       const std::vector<v1::RouterGenerateRequest>& requests);

 private:
  ThreadPool pool_{1};
  std::unique_ptr<ModelWeights> weights_;
  std::unique_ptr<ExpertDispatch> local_;
  std::unique_ptr<ModelRunner> runner_;
};

v1::RouterGenerateRequest GreedyRequest(const std::vector<int32_t>& prompt,
                                        int max_tokens);

std::unique_ptr<v1::Router::Stub> RouterStub(const Cluster& cluster);

// Polls `condition` every 50 ms for up to `timeout`; its last answer.
bool Eventually(const std::function<bool()>& condition,
                absl::Duration timeout = absl::Seconds(10));

// The router's GetStatus; a test failure when the call fails.
v1::RouterStatus GetRouterStatus(v1::Router::Stub& stub);

// A prompt of `length` tokens, BOS first, the rest from `seed`.
std::vector<int32_t> Prompt(int length, int seed);

}  // namespace moe::testing

#endif  // MOE_TESTS_SUPPORT_TEST_CLUSTER_H_

#include "tests/support/test_cluster.h"

#include <algorithm>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "core/placement/placement_planner.h"
#include "engine/cpu_model_runner.h"
#include "engine/generation.h"
#include "engine/local_expert_dispatch.h"
#include "gtest/gtest.h"

namespace moe::testing {

PlacementPlan PlanWithSlots(const TestModelSpec& spec,
                            const std::vector<int>& slots, int copies,
                            int version) {
  PlannerInput input;
  input.model = spec.Name();
  input.version = version;
  input.num_layers = spec.layers;
  input.num_experts = spec.experts;
  input.expert_bytes = int64_t{3} * spec.hidden * spec.intermediate *
                       (spec.format == WeightFormat::kFp8 ? 1 : 2);
  for (size_t i = 0; i < slots.size(); ++i) {
    input.workers.push_back(
        {absl::StrCat("w", i), slots[i] * input.expert_bytes, 1.0});
  }
  input.copies = copies;
  absl::StatusOr<PlacementPlan> plan = PlanPlacement(input);
  EXPECT_TRUE(plan.ok()) << plan.status();
  return plan.ok() ? *plan : PlacementPlan();
}

std::string LogPrefix(const std::string& name) {
  std::string test =
      ::testing::UnitTest::GetInstance()->current_test_info()->name();
  std::replace(test.begin(), test.end(), '/', '_');
  return absl::StrCat(::testing::TempDir(), "/cluster_", test, "_", name);
}

namespace {

// moe-expert-worker `id` on the cluster's model; `share` says what it
// starts with (--plan or --memory).
std::unique_ptr<ChildProcess> StartWorkerWith(
    const Cluster& cluster, const std::string& id, const std::string& listen,
    const std::vector<std::string>& share,
    const std::vector<std::string>& worker_flags) {
  std::vector<std::string> args = {SiblingBinary("moe-expert-worker"),
                                   "--model",
                                   cluster.model_dir,
                                   "--worker-id",
                                   id,
                                   "--listen",
                                   listen,
                                   "--threads",
                                   "1"};
  args.insert(args.end(), share.begin(), share.end());
  args.insert(args.end(), worker_flags.begin(), worker_flags.end());
  auto worker = ChildProcess::Start(args, LogPrefix(id));
  EXPECT_TRUE(worker.ok()) << worker.status();
  return std::move(*worker);
}

}  // namespace

std::unique_ptr<ChildProcess> StartWorker(
    const Cluster& cluster, const std::string& id, const std::string& listen,
    const std::vector<std::string>& worker_flags) {
  return StartWorkerWith(cluster, id, listen, {"--plan", cluster.plan_path},
                         worker_flags);
}

std::unique_ptr<ChildProcess> StartEmptyWorker(const Cluster& cluster,
                                               const std::string& id,
                                               int64_t memory_bytes) {
  return StartWorkerWith(cluster, id, "127.0.0.1:0",
                         {"--memory", std::to_string(memory_bytes)}, {});
}

std::unique_ptr<ChildProcess> StartGateway(
    const Cluster& cluster, const std::vector<std::string>& flags,
    std::string& address) {
  std::vector<std::string> args = {
      SiblingBinary("moe-gateway"), "--model",  cluster.model_dir, "--routers",
      cluster.router_address,       "--listen", "127.0.0.1:0"};
  args.insert(args.end(), flags.begin(), flags.end());
  auto gateway = ChildProcess::Start(args, LogPrefix("gateway"));
  EXPECT_TRUE(gateway.ok()) << gateway.status();
  if (!gateway.ok()) return nullptr;
  absl::StatusOr<std::string> listening =
      (*gateway)->AwaitAddress(kStartTimeout);
  EXPECT_TRUE(listening.ok()) << listening.status();
  if (!listening.ok()) return nullptr;
  address = *listening;
  return std::move(*gateway);
}

grpc::Status GenerateThroughGateway(
    const std::string& address,
    const std::shared_ptr<grpc::ChannelCredentials>& credentials) {
  auto stub = v1::Inference::NewStub(grpc::CreateChannel(address, credentials));
  v1::GenerateRequest request;
  request.set_text("one two");
  request.set_max_tokens(4);
  request.set_ignore_eos(true);
  request.set_temperature(0);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  auto reader = stub->Generate(&context, request);
  v1::GenerateResponse response;
  int tokens = 0;
  while (reader->Read(&response)) tokens += response.token_ids_size();
  grpc::Status status = reader->Finish();
  if (status.ok()) EXPECT_EQ(tokens, 4);
  return status;
}

void StartCluster(const TestModelSpec& spec, const PlacementPlan& plan,
                  const std::vector<std::string>& router_flags,
                  Cluster& cluster,
                  const std::vector<std::string>& worker_flags) {
  cluster.model_dir = MakeTestModel(spec);
  cluster.plan = plan;
  cluster.plan_path = LogPrefix("plan.json");
  const absl::Status written = WritePlan(cluster.plan, cluster.plan_path);
  ASSERT_TRUE(written.ok()) << written;
  for (const WorkerSpec& worker : cluster.plan.workers) {
    cluster.workers.push_back(
        StartWorker(cluster, worker.id, "127.0.0.1:0", worker_flags));
  }
  for (auto& worker : cluster.workers) {
    absl::StatusOr<std::string> address = worker->AwaitAddress(kStartTimeout);
    ASSERT_TRUE(address.ok()) << address.status();
    cluster.worker_addresses.push_back(*address);
  }
  std::vector<std::string> args = {SiblingBinary("moe-router"),
                                   "--model",
                                   cluster.model_dir,
                                   "--plan",
                                   cluster.plan_path,
                                   "--workers",
                                   cluster.WorkersFlag(),
                                   "--threads",
                                   "1"};
  args.insert(args.end(), router_flags.begin(), router_flags.end());
  auto router = ChildProcess::Start(args, LogPrefix("router"));
  ASSERT_TRUE(router.ok()) << router.status();
  cluster.router = std::move(*router);
  absl::StatusOr<std::string> address =
      cluster.router->AwaitAddress(kStartTimeout);
  ASSERT_TRUE(address.ok()) << address.status();
  cluster.router_address = *address;
}

StreamResult RunGenerate(v1::Router::Stub& stub,
                         const v1::RouterGenerateRequest& request,
                         absl::Duration deadline,
                         const std::function<void()>& on_first) {
  StreamResult result;
  grpc::ClientContext context;
  const absl::Time start = absl::Now();
  context.set_deadline(absl::ToChronoTime(start + deadline));
  auto reader = stub.Generate(&context, request);
  v1::RouterGenerateResponse response;
  while (reader->Read(&response)) {
    if (result.tokens.empty() && on_first) on_first();
    result.tokens.insert(result.tokens.end(), response.token_ids().begin(),
                         response.token_ids().end());
    result.last = response;
  }
  result.status = reader->Finish();
  result.elapsed = absl::Now() - start;
  return result;
}

std::vector<StreamResult> RunConcurrently(
    v1::Router::Stub& stub,
    const std::vector<v1::RouterGenerateRequest>& requests,
    const std::function<void()>& on_first) {
  std::vector<StreamResult> results(requests.size());
  std::once_flag first;
  std::vector<std::thread> clients;
  for (size_t r = 0; r < requests.size(); ++r) {
    clients.emplace_back([&, r] {
      results[r] = RunGenerate(stub, requests[r], absl::Seconds(60), [&] {
        std::call_once(first, [&] {
          if (on_first) on_first();
        });
      });
    });
  }
  for (std::thread& client : clients) client.join();
  return results;
}

EngineReference::EngineReference(const std::string& model_dir) {
  auto weights = ModelWeights::Load(model_dir);
  EXPECT_TRUE(weights.ok()) << weights.status();
  if (!weights.ok()) return;
  weights_ = std::move(*weights);
  local_ = std::make_unique<LocalExpertDispatch>(*weights_, pool_);
  runner_ = std::make_unique<CpuModelRunner>(*weights_, *local_, pool_);
}

void EngineReference::ExpectItsTokens(
    const std::vector<StreamResult>& results,
    const std::vector<v1::RouterGenerateRequest>& requests) {
  ASSERT_NE(runner_, nullptr);
  ASSERT_EQ(results.size(), requests.size());
  for (size_t r = 0; r < requests.size(); ++r) {
    ASSERT_TRUE(results[r].status.ok())
        << "stream " << r << ": " << results[r].status.error_message();
    GenerationRequest request;
    request.prompt.assign(requests[r].prompt_token_ids().begin(),
                          requests[r].prompt_token_ids().end());
    request.max_tokens = requests[r].max_tokens();
    request.stop_on_eos = false;
    auto expected = Generate(*runner_, request);
    ASSERT_TRUE(expected.ok()) << expected.status();
    EXPECT_EQ(results[r].tokens, expected->tokens) << "stream " << r;
  }
}

v1::RouterGenerateRequest GreedyRequest(const std::vector<int32_t>& prompt,
                                        int max_tokens) {
  v1::RouterGenerateRequest request;
  request.mutable_prompt_token_ids()->Add(prompt.begin(), prompt.end());
  request.set_max_tokens(max_tokens);
  return request;
}

std::unique_ptr<v1::Router::Stub> RouterStub(const Cluster& cluster) {
  return v1::Router::NewStub(grpc::CreateChannel(
      cluster.router_address, grpc::InsecureChannelCredentials()));
}

bool Eventually(const std::function<bool()>& condition,
                absl::Duration timeout) {
  const absl::Time give_up = absl::Now() + timeout;
  while (!condition() && absl::Now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return condition();
}

v1::RouterStatus GetRouterStatus(v1::Router::Stub& stub) {
  grpc::ClientContext context;
  v1::RouterStatus status;
  const grpc::Status called = stub.GetStatus(&context, {}, &status);
  EXPECT_TRUE(called.ok()) << called.error_message();
  return status;
}

std::vector<int32_t> Prompt(int length, int seed) {
  std::vector<int32_t> prompt = {1};
  for (int i = 1; i < length; ++i)
    prompt.push_back(3 + (seed * 37 + i * 11) % 390);
  return prompt;
}

}  // namespace moe::testing

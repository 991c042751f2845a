// moe-admin against a router and two expert workers as real processes on
// 127.0.0.1: status lists the workers, load exports the routed tokens of
// the window in the form moe-plan --load reads, and errors are named.
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/util/file_util.h"
#include "core/util/subprocess.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/expect_has_substr.h"
#include "tests/support/test_cluster.h"

namespace moe::testing {
namespace {

std::string ReadFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  EXPECT_TRUE(text.ok()) << text.status();
  return text.ok() ? *text : "";
}

class AdminTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StartCluster(spec_, PlanWithSlots(spec_, {10, 10}), {}, cluster_);
  }

  // moe-admin with `args`; its exit status, and its output in `output`.
  absl::Status Admin(const std::vector<std::string>& args,
                     std::string& output) {
    std::vector<std::string> command = {SiblingBinary("moe-admin")};
    command.insert(command.end(), args.begin(), args.end());
    const std::string log = LogPrefix("moe-admin.log");
    const absl::Status status = RunProgram(command, log);
    output = ReadFile(log);
    return status;
  }

  const TestModelSpec spec_{.layers = 2};
  Cluster cluster_;
};

TEST_F(AdminTest, LoadExportsTheWindowAsMoePlanReadsIt) {
  auto stub = RouterStub(cluster_);
  int64_t rows = 0;
  for (int r = 0; r < 4; ++r) {
    const StreamResult result =
        RunGenerate(*stub, GreedyRequest(Prompt(5 + r, r), 6));
    ASSERT_TRUE(result.status.ok()) << result.status.error_message();
    // Every prompt token and every token fed back passes every layer.
    rows += 5 + r + static_cast<int64_t>(result.tokens.size()) - 1;
  }
  const int64_t expected = rows * spec_.layers * 2;  // top-2
  const std::string out = LogPrefix("load.json");
  const std::string router = absl::StrCat("--router=", cluster_.router_address);
  nlohmann::json load;
  int64_t routed = -1;
  // The router samples its counters every second.
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (routed != expected && absl::Now() < give_up) {
    std::string output;
    const absl::Status status =
        Admin({router, "load", "--window-s=600", "--out", out}, output);
    ASSERT_TRUE(status.ok()) << status << "\n" << output;
    load = nlohmann::json::parse(ReadFile(out));
    routed = 0;
    for (const auto& row : load["load"]) {
      for (const auto& count : row) routed += count.get<int64_t>();
    }
    if (routed != expected) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  EXPECT_EQ(routed, expected);
  ASSERT_EQ(load["load"].size(), size_t(spec_.layers));
  EXPECT_EQ(load["load"][0].size(), size_t(spec_.experts));
  EXPECT_GT(load["window_seconds"].get<double>(), 0);
  ASSERT_EQ(load["workers"].size(), 2u);
  for (const auto& worker : load["workers"]) {
    EXPECT_GT(worker["rows"].get<int64_t>(), 0) << worker.dump();
    EXPECT_GT(worker["calls"].get<int64_t>(), 0) << worker.dump();
  }

  // moe-plan plans from it as it stands.
  const std::string plan_log = LogPrefix("moe-plan.log");
  const absl::Status replanned =
      RunProgram({SiblingBinary("moe-plan"), "--model", cluster_.model_dir,
                  "--workers", "w0=1GiB,w1=1GiB", "--load", out},
                 plan_log);
  EXPECT_TRUE(replanned.ok()) << replanned;
  EXPECT_HAS_SUBSTR(ReadFile(plan_log), "given load");
}

TEST_F(AdminTest, StatusListsTheWorkersAndErrorsAreNamed) {
  std::string output;
  const std::string router = absl::StrCat("--router=", cluster_.router_address);
  ASSERT_TRUE(Admin({router, "status"}, output).ok()) << output;
  EXPECT_HAS_SUBSTR(output, "plan version: 1");
  for (const char* worker : {"w0", "w1"}) {
    EXPECT_HAS_SUBSTR(output, absl::StrCat(worker, " "));
  }
  EXPECT_HAS_SUBSTR(output, " up ");

  EXPECT_FALSE(Admin({"status"}, output).ok());
  EXPECT_HAS_SUBSTR(output, "--router HOST:PORT is needed");
  EXPECT_FALSE(Admin({router, "frobnicate"}, output).ok());
  EXPECT_HAS_SUBSTR(output, "expected one of: status, load, apply-plan");
  EXPECT_FALSE(Admin({router, "add-worker", "w7"}, output).ok());
  EXPECT_HAS_SUBSTR(output, "\"w7\" is not ID=HOST:PORT");
  EXPECT_FALSE(Admin({router, "apply-plan", "/nonexistent.json"}, output).ok());
  EXPECT_HAS_SUBSTR(output, "/nonexistent.json");
  EXPECT_FALSE(Admin({router, "load", "--window-s=-1"}, output).ok());
  EXPECT_HAS_SUBSTR(output, "window_seconds must be >= 0");
  EXPECT_FALSE(Admin({"--router=127.0.0.1:1", "status"}, output).ok());
  EXPECT_HAS_SUBSTR(output, "UNAVAILABLE");
}

// The changes of the expert tier, as an operator makes them: a worker joins,
// a rebalance gives it experts, a plan file is applied, and the worker is
// drained; each prints what changed and how long it took.
TEST_F(AdminTest, WorkersJoinAndLeaveAndPlansChange) {
  const std::string router = absl::StrCat("--router=", cluster_.router_address);
  std::unique_ptr<ChildProcess> joining =
      StartEmptyWorker(cluster_, "w2", 10 * cluster_.plan.expert_bytes);
  absl::StatusOr<std::string> address = joining->AwaitAddress(kStartTimeout);
  ASSERT_TRUE(address.ok()) << address.status();

  std::string output;
  ASSERT_TRUE(Admin({router, "add-worker", "w2=" + *address}, output).ok())
      << output;
  EXPECT_HAS_SUBSTR(output, "worker w2 joined: cpu");
  EXPECT_HAS_SUBSTR(output, "took ");

  const std::string applied = LogPrefix("plan-v2.json");
  ASSERT_TRUE(Admin({router, "rebalance", "--out", applied}, output).ok())
      << output;
  EXPECT_HAS_SUBSTR(output, "plan version 1 -> 2 in ");
  EXPECT_HAS_SUBSTR(output, "w2 ");
  EXPECT_HAS_SUBSTR(output, "took ");
  // The plan in use, to restart the router with.
  absl::StatusOr<PlacementPlan> two = ReadPlan(applied);
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(two->version, 2);
  EXPECT_GE(two->WorkerIndex("w2"), 0);

  const PlacementPlan three = PlanWithSlots(spec_, {10, 10, 10}, 1, 3);
  const std::string plan_path = LogPrefix("plan-v3.json");
  ASSERT_TRUE(WritePlan(three, plan_path).ok());
  ASSERT_TRUE(Admin({router, "apply-plan", plan_path}, output).ok()) << output;
  EXPECT_HAS_SUBSTR(output, "plan version 2 -> 3 in ");
  // Applying it again is refused: its version is not newer.
  EXPECT_FALSE(Admin({router, "apply-plan", plan_path}, output).ok());
  EXPECT_HAS_SUBSTR(output, "plan version 3 is not newer than the router's 3");

  ASSERT_TRUE(Admin({router, "drain-worker", "w2"}, output).ok()) << output;
  EXPECT_HAS_SUBSTR(output, "plan version 3 -> 4 in ");
  EXPECT_HAS_SUBSTR(output, "worker w2 holds no experts");

  ASSERT_TRUE(Admin({router, "status"}, output).ok()) << output;
  EXPECT_HAS_SUBSTR(output, "plan version: 4");
  EXPECT_EQ(output.find("w2 "), std::string::npos) << output;
  auto stub = RouterStub(cluster_);
  const StreamResult result =
      RunGenerate(*stub, GreedyRequest(Prompt(6, 1), 8));
  EXPECT_TRUE(result.status.ok()) << result.status.error_message();
}

}  // namespace
}  // namespace moe::testing

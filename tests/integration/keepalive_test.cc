// Keepalive between services as real processes on 127.0.0.1. The gateway's
// link to its router carries nothing while no request runs (the router's
// links to its workers carry its health probes every second); the gateway
// pings it every --keepalive-interval-ms all the same, and the router
// accepts pings that far apart, so the idle link outlives many pings
// without GOAWAY "too_many_pings". Intervals here are short so that a few
// seconds hold many pings; the second test shows that the check sees a
// disagreement.
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/support/test_cluster.h"

namespace moe::testing {
namespace {

// What gRPC logs (at ERROR, shown by default) when a server answers a
// client's pings with GOAWAY.
constexpr char kTooManyPings[] = "too_many_pings";

std::vector<std::string> Keepalive(int milliseconds) {
  return {"--keepalive-interval-ms", std::to_string(milliseconds)};
}

// A gateway pinging every `gateway_ms` in front of a router that accepts
// pings `router_ms` / 2 apart: a generation, `idle` without requests,
// another generation. Returns the gateway's stderr.
std::string GatewayLogAfterIdle(int gateway_ms, int router_ms,
                                absl::Duration idle) {
  const TestModelSpec spec{.format = WeightFormat::kFp8, .layers = 2};
  Cluster cluster;
  StartCluster(spec, PlanWithSlots(spec, {16}), Keepalive(router_ms), cluster);
  std::string address;
  const std::unique_ptr<ChildProcess> gateway =
      StartGateway(cluster, Keepalive(gateway_ms), address);
  if (gateway == nullptr) return "";
  const auto plaintext = grpc::InsecureChannelCredentials();
  EXPECT_TRUE(GenerateThroughGateway(address, plaintext).ok());
  absl::SleepFor(idle);
  EXPECT_TRUE(GenerateThroughGateway(address, plaintext).ok());
  return gateway->Stderr();
}

TEST(KeepaliveTest, AnIdleLinkOutlivesTheServersPingLimit) {
  // Pings for 5 s on an idle link at least 1 s apart (gRPC's floor), where
  // two pings too soon already earn a GOAWAY.
  const std::string log = GatewayLogAfterIdle(300, 300, absl::Seconds(5));
  EXPECT_EQ(log.find(kTooManyPings), std::string::npos) << log;
}

TEST(KeepaliveTest, AServerThatWantsFewerPingsSaysSo) {
  // The router accepts pings 2.5 s apart; the gateway sends more.
  const std::string log = GatewayLogAfterIdle(300, 5000, absl::Seconds(5));
  EXPECT_NE(log.find(kTooManyPings), std::string::npos)
      << "the gateway was not told to ping less: " << log;
}

}  // namespace
}  // namespace moe::testing

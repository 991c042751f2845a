// TLS and mTLS between real processes on 127.0.0.1, with certificates made
// by scripts/make-certs.sh: the gateway serves TLS (client certificates
// optional, checked when sent), the router and the workers mTLS (clients
// must present a certificate of the cluster's CA). A generation crosses all
// three; clients without a certificate, with one of another CA, or without
// TLS are refused; administrative calls need an admin identity; plaintext
// on an address other than loopback is refused at start.
#include "absl/strings/str_cat.h"
#include "core/util/file_util.h"
#include "core/util/subprocess.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "moe/v1/inference.grpc.pb.h"
#include "moe/v1/router_admin.grpc.pb.h"
#include "rpc/admin_access.h"
#include "rpc/transport_security.h"
#include "tests/support/expect_has_substr.h"
#include "tests/support/test_cluster.h"

namespace moe::testing {
namespace {

// Makes a CA and the certificates NAMES in `dir`; fails the test otherwise.
void MakeCerts(const std::string& dir, const std::vector<std::string>& names) {
  std::vector<std::string> args = {
      "/bin/bash", std::string(MOE_SOURCE_DIR) + "/scripts/make-certs.sh", dir};
  args.insert(args.end(), names.begin(), names.end());
  const absl::Status made = RunProgram(args, LogPrefix("make-certs.log"));
  ASSERT_TRUE(made.ok()) << made;
}

TlsConfig Certificate(const std::string& dir, const std::string& name,
                      const std::string& ca_dir) {
  absl::StatusOr<TlsConfig> tls =
      name.empty()
          ? ReadTlsConfig("", "", ca_dir + "/ca.pem")
          : ReadTlsConfig(dir + "/" + name + ".pem", dir + "/" + name + ".key",
                          ca_dir + "/ca.pem");
  EXPECT_TRUE(tls.ok()) << tls.status();
  return tls.ok() ? *tls : TlsConfig();
}

std::vector<std::string> TlsFlags(const std::string& dir,
                                  const std::string& name) {
  return {"--tls-cert", dir + "/" + name + ".pem",
          "--tls-key",  dir + "/" + name + ".key",
          "--tls-ca",   dir + "/ca.pem"};
}

// A cluster (one worker, the router, the gateway) serving with certificates
// of `certs_`; `other_` holds a CA and a client certificate of its own.
class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    certs_ = LogPrefix("certs");
    other_ = LogPrefix("other-certs");
    MakeCerts(certs_, {"gateway", "router", "worker", "client", "admin"});
    MakeCerts(other_, {"client"});
    const TestModelSpec spec{.format = WeightFormat::kFp8, .layers = 2};
    StartCluster(spec, PlanWithSlots(spec, {16}), TlsFlags(certs_, "router"),
                 cluster_, TlsFlags(certs_, "worker"));
    gateway_ =
        StartGateway(cluster_, TlsFlags(certs_, "gateway"), gateway_address_);
  }

  grpc::Status Generate(
      const std::shared_ptr<grpc::ChannelCredentials>& credentials) {
    return GenerateThroughGateway(gateway_address_, credentials);
  }

  // GetStatus on the router with `credentials`.
  grpc::Status RouterStatus(
      const std::shared_ptr<grpc::ChannelCredentials>& credentials) {
    auto stub = v1::Router::NewStub(
        grpc::CreateChannel(cluster_.router_address, credentials));
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    v1::RouterStatus status;
    return stub->GetStatus(&context, {}, &status);
  }

  // Describe on the worker with `credentials`.
  grpc::Status WorkerDescribe(
      const std::shared_ptr<grpc::ChannelCredentials>& credentials) {
    auto stub = v1::ExpertWorker::NewStub(
        grpc::CreateChannel(cluster_.worker_addresses[0], credentials));
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    v1::WorkerDescription description;
    return stub->Describe(&context, {}, &description);
  }

  std::string certs_;
  std::string other_;
  Cluster cluster_;
  std::unique_ptr<ChildProcess> gateway_;
  std::string gateway_address_;
};

TEST_F(TlsTest, AGenerationCrossesTlsAndMtls) {
  // TLS only: the gateway's clients need no certificate.
  const grpc::Status tls =
      Generate(ChannelCredentialsFor(Certificate(certs_, "", certs_)));
  EXPECT_TRUE(tls.ok()) << tls.error_message();
  const grpc::Status mtls =
      Generate(ChannelCredentialsFor(Certificate(certs_, "client", certs_)));
  EXPECT_TRUE(mtls.ok()) << mtls.error_message();
}

TEST_F(TlsTest, PlaintextIsRefusedOnTlsPorts) {
  EXPECT_FALSE(Generate(grpc::InsecureChannelCredentials()).ok());
  EXPECT_FALSE(RouterStatus(grpc::InsecureChannelCredentials()).ok());
  EXPECT_FALSE(WorkerDescribe(grpc::InsecureChannelCredentials()).ok());
}

TEST_F(TlsTest, InternalPortsRefuseClientsWithoutACertificateOfTheCa) {
  const auto with_ca_only =
      ChannelCredentialsFor(Certificate(certs_, "", certs_));
  EXPECT_FALSE(RouterStatus(with_ca_only).ok());
  EXPECT_FALSE(WorkerDescribe(with_ca_only).ok());
  // A certificate of another CA, trusting this cluster's CA.
  const auto of_other_ca =
      ChannelCredentialsFor(Certificate(other_, "client", certs_));
  EXPECT_FALSE(RouterStatus(of_other_ca).ok());
  EXPECT_FALSE(WorkerDescribe(of_other_ca).ok());
  EXPECT_FALSE(Generate(of_other_ca).ok());
  // The cluster's own client certificate gets in.
  const auto of_the_ca =
      ChannelCredentialsFor(Certificate(certs_, "client", certs_));
  const grpc::Status router = RouterStatus(of_the_ca);
  EXPECT_TRUE(router.ok()) << router.error_message();
  const grpc::Status worker = WorkerDescribe(of_the_ca);
  EXPECT_TRUE(worker.ok()) << worker.error_message();
}

TEST_F(TlsTest, AServerCertifiedByAnotherCaIsRefused) {
  // The client trusts the other CA only: the gateway's certificate fails.
  EXPECT_FALSE(
      Generate(ChannelCredentialsFor(Certificate(other_, "client", other_)))
          .ok());
}

// Loading and unloading experts, cancelling requests and plan changes take
// the router's or an admin certificate (--admin-identities), not merely
// one of the CA.
TEST_F(TlsTest, AdministrativeCallsNeedAnAdminCertificate) {
  auto unload = [&](const std::string& name) {
    auto stub = v1::ExpertWorker::NewStub(grpc::CreateChannel(
        cluster_.worker_addresses[0],
        ChannelCredentialsFor(Certificate(certs_, name, certs_))));
    grpc::ClientContext context;
    v1::ExpertSet nothing;
    v1::WorkerDescription description;
    return stub->UnloadExperts(&context, nothing, &description);
  };
  auto cancel = [&](const std::string& name) {
    auto stub = v1::Router::NewStub(grpc::CreateChannel(
        cluster_.router_address,
        ChannelCredentialsFor(Certificate(certs_, name, certs_))));
    grpc::ClientContext context;
    v1::CancelRequest request;
    request.set_request_id("no-such-request");
    v1::CancelResponse response;
    return stub->Cancel(&context, request, &response);
  };
  auto rebalance = [&](const std::string& name) {
    auto stub = v1::RouterAdmin::NewStub(grpc::CreateChannel(
        cluster_.router_address,
        ChannelCredentialsFor(Certificate(certs_, name, certs_))));
    grpc::ClientContext context;
    v1::RebalanceRequest request;
    v1::PlanChange change;
    return stub->Rebalance(&context, request, &change);
  };
  const grpc::Status client_unload = unload("client");
  EXPECT_EQ(client_unload.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_HAS_SUBSTR(client_unload.error_message(),
                    "UnloadExperts needs a client certificate named router "
                    "or admin");
  EXPECT_EQ(cancel("client").error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(rebalance("client").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // The admin gets past the check: unloading nothing succeeds, the unknown
  // request is not found, and a rebalance without load says so.
  const grpc::Status admin_unload = unload("admin");
  EXPECT_TRUE(admin_unload.ok()) << admin_unload.error_message();
  EXPECT_EQ(cancel("admin").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(rebalance("admin").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

TEST(PlaintextTest, ANonLoopbackAddressNeedsTlsOrInsecure) {
  // Refused before anything binds: no port other than loopback is opened.
  const TestModelSpec spec{.format = WeightFormat::kFp8, .layers = 2};
  const std::string model = MakeTestModel(spec);
  const std::string log = LogPrefix("plaintext_router.log");
  const absl::Status status = RunProgram(
      {SiblingBinary("moe-router"), "--model", model, "--listen", "0.0.0.0:0"},
      log);
  EXPECT_FALSE(status.ok());
  absl::StatusOr<std::string> output = ReadFileToString(log);
  ASSERT_TRUE(output.ok());
  EXPECT_HAS_SUBSTR(*output,
                    "is not loopback: serving it without TLS needs "
                    "--insecure");
}

TEST(AdminAccessTest, LoopbackPeers) {
  for (const char* peer :
       {"ipv4:127.0.0.1:5000", "ipv4:127.9.9.9:1", "ipv6:[::1]:5000",
        "ipv6:%5B::1%5D:5000", "unix:/tmp/socket"}) {
    EXPECT_TRUE(IsLoopbackPeer(peer)) << peer;
  }
  for (const char* peer : {"ipv4:10.1.2.3:5000", "ipv6:[2001:db8::1]:5000",
                           "ipv6:%5B2001:db8::1%5D:5", "", "127.0.0.1:5"}) {
    EXPECT_FALSE(IsLoopbackPeer(peer)) << peer;
  }
}

TEST(TransportSecurityTest, LoopbackHosts) {
  for (const char* host :
       {"127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"}) {
    EXPECT_TRUE(IsLoopbackHost(host)) << host;
  }
  for (const char* host : {"0.0.0.0", "10.0.0.1", "::", "example.com", ""}) {
    EXPECT_FALSE(IsLoopbackHost(host)) << host;
  }
}

TEST(TransportSecurityTest, FlagsAreCheckedAndNamed) {
  EXPECT_HAS_SUBSTR(ReadTlsConfig("cert.pem", "", "").status().message(),
                    "--tls-cert and --tls-key come together");
  EXPECT_HAS_SUBSTR(ReadTlsConfig("", "", "/no/such/ca.pem").status().message(),
                    "--tls-ca: cannot read /no/such/ca.pem");
  EXPECT_HAS_SUBSTR(
      ServerCredentialsFor(TlsConfig{.cert = "c", .key = "k"}, "127.0.0.1:0",
                           ClientCertificates::kRequired, false)
          .status()
          .message(),
      "--tls-ca is needed");
}

}  // namespace
}  // namespace moe::testing

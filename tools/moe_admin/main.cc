// moe-admin: an operator's view and control of a running router
// (moe.v1.Router and moe.v1.RouterAdmin).
//   moe-admin --router HOST:PORT status
//   moe-admin --router HOST:PORT load [--window-s 60] [--out FILE]
//   moe-admin --router HOST:PORT apply-plan FILE
//   moe-admin --router HOST:PORT add-worker ID=HOST:PORT
//   moe-admin --router HOST:PORT drain-worker ID [--window-s 60]
//   moe-admin --router HOST:PORT rebalance [--window-s 60]
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "core/util/command_line.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "moe/v1/router.grpc.pb.h"
#include "moe/v1/router_admin.grpc.pb.h"
#include "rpc/grpc_status.h"
#include "rpc/tls_flags.h"
#include "tools/moe_admin/admin_report.h"

ABSL_FLAG(std::string, router, "", "the router's host:port (required)");
ABSL_FLAG(int, window_s, 60,
          "load, rebalance, drain-worker: seconds of the load window (at "
          "most 600)");
ABSL_FLAG(std::string, out, "",
          "load: write the JSON here (moe-plan --load reads it; default "
          "stdout); apply-plan, rebalance, drain-worker: write the plan now "
          "in use here (the --plan to restart the router with)");
ABSL_FLAG(int, deadline_ms, 10000, "the deadline of status and load");
ABSL_FLAG(int, change_deadline_s, 600,
          "the deadline of apply-plan, add-worker, drain-worker and rebalance "
          "(workers read the experts they gain meanwhile)");

namespace {

// Runs `call(stub, context)` on a stub of `Service` with `deadline`; its
// status as absl's.
template <typename Service, typename Call>
absl::Status CallRouter(absl::Duration deadline, Call call) {
  const std::string address = absl::GetFlag(FLAGS_router);
  if (address.empty()) {
    return absl::InvalidArgumentError("--router HOST:PORT is needed");
  }
  MOE_ASSIGN_OR_RETURN(const moe::TlsConfig tls, moe::TlsConfigFromFlags());
  auto stub = Service::NewStub(
      grpc::CreateChannel(address, moe::ChannelCredentialsFor(tls)));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  const grpc::Status status = call(*stub, context);
  if (status.ok()) return absl::OkStatus();
  return absl::Status(
      moe::FromGrpcStatus(status).code(),
      absl::StrCat("router ", address, ": ", status.error_message()));
}

absl::Duration ReadDeadline() {
  return absl::Milliseconds(absl::GetFlag(FLAGS_deadline_ms));
}

// Runs a change on moe.v1.RouterAdmin and prints what it did and how long
// it took, as this end saw it.
template <typename Call>
absl::Status Change(Call call) {
  const absl::Time start = absl::Now();
  MOE_RETURN_IF_ERROR(CallRouter<moe::v1::RouterAdmin>(
      absl::Seconds(absl::GetFlag(FLAGS_change_deadline_s)), call));
  std::cout << "took " << absl::FormatDuration(absl::Now() - start)
            << std::endl;
  return absl::OkStatus();
}

// Prints a plan change and writes its plan to --out when given.
absl::Status Report(const moe::v1::PlanChange& change) {
  std::cout << moe::FormatPlanChange(change);
  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) return absl::OkStatus();
  MOE_RETURN_IF_ERROR(moe::WriteStringToFile(out, change.plan_json() + "\n"));
  std::cout << "plan version " << change.to_version() << " written to " << out
            << "\n";
  return absl::OkStatus();
}

absl::Status ApplyPlan(const std::string& path) {
  moe::v1::ApplyPlanRequest request;
  MOE_ASSIGN_OR_RETURN(const std::string json, moe::ReadFileToString(path));
  request.set_plan_json(json);
  moe::v1::PlanChange change;
  MOE_RETURN_IF_ERROR(Change([&](auto& stub, auto& context) {
    return stub.ApplyPlan(&context, request, &change);
  }));
  return Report(change);
}

absl::Status Rebalance() {
  moe::v1::RebalanceRequest request;
  request.set_window_seconds(absl::GetFlag(FLAGS_window_s));
  moe::v1::PlanChange change;
  MOE_RETURN_IF_ERROR(Change([&](auto& stub, auto& context) {
    return stub.Rebalance(&context, request, &change);
  }));
  return Report(change);
}

absl::Status AddWorker(const std::string& spec) {
  const std::pair<std::string, std::string> endpoint =
      absl::StrSplit(spec, absl::MaxSplits('=', 1));
  if (endpoint.first.empty() ||
      endpoint.second.find(':') == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("add-worker: \"", spec, "\" is not ID=HOST:PORT"));
  }
  moe::v1::AddWorkerRequest request;
  request.set_worker_id(endpoint.first);
  request.set_address(endpoint.second);
  moe::v1::WorkerDescription description;
  return Change([&](auto& stub, auto& context) {
    const grpc::Status status = stub.AddWorker(&context, request, &description);
    if (status.ok()) std::cout << moe::FormatWorkerJoined(description);
    return status;
  });
}

absl::Status DrainWorker(const std::string& id) {
  moe::v1::DrainWorkerRequest request;
  request.set_worker_id(id);
  request.set_window_seconds(absl::GetFlag(FLAGS_window_s));
  moe::v1::PlanChange change;
  MOE_RETURN_IF_ERROR(Change([&](auto& stub, auto& context) {
    return stub.DrainWorker(&context, request, &change);
  }));
  MOE_RETURN_IF_ERROR(Report(change));
  if (change.unload_errors().empty()) {
    std::cout << "worker " << id
              << " holds no experts and the router has forgotten it\n";
  } else {
    std::cout << "the router has forgotten worker " << id
              << "; it may still hold experts (see above)\n";
  }
  return absl::OkStatus();
}

absl::Status Status() {
  moe::v1::RouterStatus status;
  MOE_RETURN_IF_ERROR(CallRouter<moe::v1::Router>(
      ReadDeadline(), [&](auto& stub, auto& context) {
        return stub.GetStatus(&context, {}, &status);
      }));
  std::cout << moe::FormatRouterStatus(status);
  return absl::OkStatus();
}

absl::Status Load() {
  moe::v1::LoadRequest request;
  request.set_window_seconds(absl::GetFlag(FLAGS_window_s));
  moe::v1::LoadReport report;
  MOE_RETURN_IF_ERROR(CallRouter<moe::v1::Router>(
      ReadDeadline(), [&](auto& stub, auto& context) {
        return stub.GetLoad(&context, request, &report);
      }));
  MOE_ASSIGN_OR_RETURN(const nlohmann::json json,
                       moe::LoadReportToJson(report));
  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) {
    std::cout << json.dump(2) << "\n";
  } else {
    MOE_RETURN_IF_ERROR(moe::WriteStringToFile(out, json.dump(2) + "\n"));
  }
  std::cerr << moe::FormatLoadSummary(report);
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args =
      moe::ParseCommandLine(argc, argv,
                            "moe-admin --router HOST:PORT COMMAND, one of\n"
                            "  status\n"
                            "  load [--window-s 60 --out FILE]\n"
                            "  apply-plan FILE\n"
                            "  add-worker ID=HOST:PORT\n"
                            "  drain-worker ID [--window-s 60]\n"
                            "  rebalance [--window-s 60]");
  absl::Status status;
  const std::string command = args.empty() ? "" : args[0];
  if (args.size() == 1 && command == "status") {
    status = Status();
  } else if (args.size() == 1 && command == "load") {
    status = Load();
  } else if (args.size() == 2 && command == "apply-plan") {
    status = ApplyPlan(args[1]);
  } else if (args.size() == 2 && command == "add-worker") {
    status = AddWorker(args[1]);
  } else if (args.size() == 2 && command == "drain-worker") {
    status = DrainWorker(args[1]);
  } else if (args.size() == 1 && command == "rebalance") {
    status = Rebalance();
  } else {
    status = absl::InvalidArgumentError(
        "expected one of: status, load, apply-plan FILE, add-worker "
        "ID=HOST:PORT, drain-worker ID, rebalance");
  }
  if (!status.ok()) {
    std::cerr << "moe-admin: " << status.ToString() << std::endl;
    return 1;
  }
  return 0;
}

// moe-admin: an operator's view of a running router (moe.v1.Router).
//   moe-admin --router HOST:PORT status
//   moe-admin --router HOST:PORT load [--window-s 60] [--out FILE]
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/util/command_line.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "moe/v1/router.grpc.pb.h"
#include "rpc/grpc_status.h"
#include "tools/moe_admin/admin_report.h"

ABSL_FLAG(std::string, router, "", "the router's host:port (required)");
ABSL_FLAG(int, window_s, 60, "load: seconds of the window (at most 600)");
ABSL_FLAG(std::string, out, "",
          "load: write the JSON here (moe-plan --load reads it); default "
          "stdout");
ABSL_FLAG(int, deadline_ms, 10000, "the deadline of each call");

namespace {

// Runs `call(stub, context)` with the deadline; its status as absl's.
template <typename Call>
absl::Status CallRouter(Call call) {
  const std::string address = absl::GetFlag(FLAGS_router);
  if (address.empty()) {
    return absl::InvalidArgumentError("--router HOST:PORT is needed");
  }
  auto stub = moe::v1::Router::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(
      absl::Now() + absl::Milliseconds(absl::GetFlag(FLAGS_deadline_ms))));
  const grpc::Status status = call(*stub, context);
  if (status.ok()) return absl::OkStatus();
  return absl::Status(
      moe::FromGrpcStatus(status).code(),
      absl::StrCat("router ", address, ": ", status.error_message()));
}

absl::Status Status() {
  moe::v1::RouterStatus status;
  MOE_RETURN_IF_ERROR(CallRouter([&](auto& stub, auto& context) {
    return stub.GetStatus(&context, {}, &status);
  }));
  std::cout << moe::FormatRouterStatus(status);
  return absl::OkStatus();
}

absl::Status Load() {
  moe::v1::LoadRequest request;
  request.set_window_seconds(absl::GetFlag(FLAGS_window_s));
  moe::v1::LoadReport report;
  MOE_RETURN_IF_ERROR(CallRouter([&](auto& stub, auto& context) {
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
  const std::vector<std::string> args = moe::ParseCommandLine(
      argc, argv,
      "moe-admin --router HOST:PORT status | load [--window-s 60 --out "
      "FILE]");
  absl::Status status;
  if (args.size() == 1 && args[0] == "status") {
    status = Status();
  } else if (args.size() == 1 && args[0] == "load") {
    status = Load();
  } else {
    status = absl::InvalidArgumentError("expected the command status or load");
  }
  if (!status.ok()) {
    std::cerr << "moe-admin: " << status.ToString() << std::endl;
    return 1;
  }
  return 0;
}

#ifndef MOE_SDK_CPP_CLI_COMMANDS_H_
#define MOE_SDK_CPP_CLI_COMMANDS_H_

#include <memory>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "grpcpp/security/credentials.h"
#include "moe/v1/inference.pb.h"
#include "sdk/cpp/client.h"

namespace moe::client {

// The moe-cli commands. Results go to `out`; generate's finish reason and
// usage go to `log` as "finish_reason=R prompt_tokens=N completion_tokens=M".

// Writes the text to `out` as it arrives, then a newline.
absl::Status RunGenerate(Client& client, const v1::GenerateRequest& request,
                         const CallOptions& call, std::ostream& out,
                         std::ostream& log);
// One "field: value" line per ModelInfo field.
absl::Status RunInfo(Client& client, const CallOptions& call,
                     std::ostream& out);
// The token ids, comma-separated.
absl::Status RunTokenize(Client& client, const std::string& text,
                         bool add_special_tokens, const CallOptions& call,
                         std::ostream& out);
// `token_ids` is comma-separated.
absl::Status RunDetokenize(Client& client, const std::string& token_ids,
                           const CallOptions& call, std::ostream& out);

// grpc.health.v1 Check of `service` ("" for the server as a whole) on any
// moe-serve server (gateway, router or worker), bounded by `timeout`:
// prints the status ("SERVING", "NOT_SERVING", ...) and fails unless it is
// SERVING, so the command can serve as a container's health check.
absl::Status RunHealth(
    const std::string& address,
    const std::shared_ptr<grpc::ChannelCredentials>& credentials,
    const std::string& service, absl::Duration timeout, std::ostream& out);

}  // namespace moe::client

#endif  // MOE_SDK_CPP_CLI_COMMANDS_H_

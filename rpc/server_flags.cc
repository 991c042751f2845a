#include "rpc/server_flags.h"

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"

ABSL_FLAG(int, drain_timeout_s, 10,
          "after SIGTERM: NOT_SERVING at once, then up to this many seconds "
          "for the calls in flight to end");

namespace moe {

absl::StatusOr<ServeOptions> ServeOptionsFromFlags(
    std::function<bool()> serving) {
  const int drain = absl::GetFlag(FLAGS_drain_timeout_s);
  if (drain < 0 || drain > 24 * 3600) {
    return absl::InvalidArgumentError(
        absl::StrCat("--drain-timeout-s must be in [0, 86400], got ", drain));
  }
  ServeOptions options;
  options.serving = std::move(serving);
  options.drain_timeout = absl::Seconds(drain);
  return options;
}

}  // namespace moe

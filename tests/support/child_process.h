#ifndef MOE_TESTS_SUPPORT_CHILD_PROCESS_H_
#define MOE_TESTS_SUPPORT_CHILD_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace moe::testing {

// The path of program `name` built beside this test's executable (the build
// puts every program in one folder), so the tests also run from a copy of
// that folder on another machine.
std::string SiblingBinary(const std::string& name);

// A service binary started by a test: stdout and stderr go to
// `<log_prefix>.out` / `.err`. The destructor stops it (SIGTERM, then
// SIGKILL), so a failing test leaves nothing running.
class ChildProcess {
 public:
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(
      const std::vector<std::string>& args, const std::string& log_prefix);
  ~ChildProcess();

  pid_t pid() const { return pid_; }

  // Waits for the "<name> listening on ADDRESS" line (or another marker,
  // e.g. " metrics on ") and returns ADDRESS. Fails, quoting stderr, if the
  // process exits first or time runs out.
  absl::StatusOr<std::string> AwaitAddress(
      absl::Duration timeout, const std::string& marker = " listening on ");

  void Signal(int signal) const;
  // Waits for the exit (reaping it); returns the wait status.
  int Wait();
  std::string Stderr() const;

 private:
  ChildProcess(pid_t pid, std::string log_prefix)
      : pid_(pid), log_prefix_(std::move(log_prefix)) {}

  pid_t pid_;
  bool reaped_ = false;
  std::string log_prefix_;
};

}  // namespace moe::testing

#endif  // MOE_TESTS_SUPPORT_CHILD_PROCESS_H_

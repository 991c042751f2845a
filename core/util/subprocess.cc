#include "core/util/subprocess.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/util/file_util.h"

extern char** environ;

namespace moe {

absl::Status RunProgram(const std::vector<std::string>& args,
                        const std::string& log_path) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  std::vector<char*> argv;
  for (const std::string& arg : args)
    argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  pid_t pid;
  const int spawn_error =
      posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawn_error != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot run ", args[0], ": ", std::strerror(spawn_error)));
  }
  int wait_status = 0;
  pid_t waited;
  while ((waited = waitpid(pid, &wait_status, 0)) < 0 && errno == EINTR) {
  }
  if (waited < 0) {
    return absl::InternalError(
        absl::StrCat("cannot wait for ", args[0], ": ", std::strerror(errno)));
  }
  if (WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0) {
    return absl::OkStatus();
  }
  std::string log = ReadFileToString(log_path).value_or("");
  if (log.size() > 2000) log = log.substr(log.size() - 2000);
  return absl::InternalError(
      absl::StrCat(args[0], " failed (status ", wait_status, "): ", log));
}

}  // namespace moe

#include "tests/support/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace moe::testing {

std::string SiblingBinary(const std::string& name) {
  return (std::filesystem::read_symlink("/proc/self/exe").parent_path() / name)
      .string();
}
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(
    const std::vector<std::string>& args, const std::string& log_prefix) {
  const std::string out = log_prefix + ".out";
  const std::string err = log_prefix + ".err";
  // Opened (and emptied) before the fork, so AwaitAddress never reads an
  // earlier run's log.
  const int out_fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const int err_fd = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (out_fd < 0 || err_fd < 0) {
    return absl::InternalError(absl::StrCat("cannot write ", out));
  }
  const pid_t pid = fork();
  if (pid == 0) {
    // The child: unblock what the test may have blocked, redirect, exec.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    std::vector<char*> argv;
    for (const std::string& arg : args) {
      argv.push_back(const_cast<char*>(arg.c_str()));
    }
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(out_fd);
  close(err_fd);
  if (pid < 0) return absl::InternalError("fork failed");
  return std::unique_ptr<ChildProcess>(new ChildProcess(pid, log_prefix));
}

ChildProcess::~ChildProcess() {
  if (reaped_) return;
  kill(pid_, SIGCONT);  // a stopped child cannot handle SIGTERM
  kill(pid_, SIGTERM);
  for (int i = 0; i < 100; ++i) {
    if (waitpid(pid_, nullptr, WNOHANG) == pid_) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
}

absl::StatusOr<std::string> ChildProcess::AwaitAddress(
    absl::Duration timeout, const std::string& marker) {
  const absl::Time give_up = absl::Now() + timeout;
  while (absl::Now() < give_up) {
    const std::string out = ReadAll(log_prefix_ + ".out");
    const size_t at = out.find(marker);
    const size_t end = out.find('\n', at);
    if (at != std::string::npos && end != std::string::npos) {
      return out.substr(at + marker.size(), end - at - marker.size());
    }
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      reaped_ = true;
      return absl::InternalError(
          absl::StrCat("process exited before listening: ", Stderr()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "no address after ", absl::FormatDuration(timeout), ": ", Stderr()));
}

void ChildProcess::Signal(int signal) const { kill(pid_, signal); }

int ChildProcess::Wait() {
  int status = 0;
  waitpid(pid_, &status, 0);
  reaped_ = true;
  return status;
}

std::string ChildProcess::Stderr() const {
  return ReadAll(log_prefix_ + ".err");
}

}  // namespace moe::testing

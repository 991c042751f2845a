#include "link/nccl_payload_pipe.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "link/cuda/nccl_pipe.h"

namespace moe {
namespace {

std::chrono::steady_clock::time_point SteadyDeadline(absl::Time deadline) {
  const auto now = std::chrono::steady_clock::now();
  if (deadline == absl::InfiniteFuture()) {
    return std::chrono::steady_clock::time_point::max();
  }
  const absl::Duration left =
      std::max(deadline - absl::Now(), absl::ZeroDuration());
  return now + absl::ToChronoNanoseconds(left);
}

class NcclPayloadPipe : public PayloadPipe {
 public:
  explicit NcclPayloadPipe(std::unique_ptr<NcclPipe> pipe)
      : pipe_(std::move(pipe)) {}

  absl::Status Send(std::string_view payload) override {
    std::string error;
    if (!pipe_->Send(payload.data(), payload.size(), &error)) {
      return absl::UnavailableError(absl::StrCat("NCCL: ", error));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> Receive(size_t size,
                                      absl::Time deadline) override {
    std::string payload;
    std::string error;
    switch (pipe_->Receive(size, &payload, SteadyDeadline(deadline), &error)) {
      case NcclPipe::ReceiveResult::kOk:
        return payload;
      case NcclPipe::ReceiveResult::kTimeout:
        return absl::DeadlineExceededError(absl::StrCat("NCCL: ", error));
      case NcclPipe::ReceiveResult::kBroken:
        break;
    }
    return absl::UnavailableError(absl::StrCat("NCCL: ", error));
  }

  void Close() override { pipe_->Abort(); }

 private:
  const std::unique_ptr<NcclPipe> pipe_;
};

}  // namespace

absl::StatusOr<std::string> NewNcclLinkId() {
  std::string id;
  std::string error;
  if (!NewNcclUniqueId(&id, &error)) {
    return absl::UnavailableError(absl::StrCat("NCCL unique id: ", error));
  }
  return id;
}

absl::StatusOr<std::unique_ptr<PayloadPipe>> ConnectNcclPayloadPipe(
    int device, int rank, const std::string& send_id,
    const std::string& receive_id, absl::Duration timeout,
    std::function<bool()> abandoned) {
  NcclPipe::Options options;
  options.device = device;
  options.rank = rank;
  options.send_id = send_id;
  options.receive_id = receive_id;
  options.connect_timeout = std::chrono::milliseconds(
      std::max<int64_t>(1, absl::ToInt64Milliseconds(timeout)));
  std::string error;
  std::unique_ptr<NcclPipe> pipe =
      NcclPipe::Connect(options, &error, std::move(abandoned));
  if (!pipe) {
    return absl::UnavailableError(absl::StrCat("NCCL pipe on cuda:", device,
                                               " as rank ", rank, ": ", error));
  }
  return std::make_unique<NcclPayloadPipe>(std::move(pipe));
}

}  // namespace moe

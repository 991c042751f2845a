#include "expert_worker/link_server.h"

#include <condition_variable>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/time/clock.h"
#include "moe/v1/expert.pb.h"

namespace moe {
namespace {

using ReplyPromise = std::promise<std::string>;

void Reply(ReplyPromise& promise, const absl::Status& status,
           v1::LinkReply reply = {}) {
  reply.set_status_code(static_cast<int32_t>(status.code()));
  reply.set_status_message(std::string(status.message()));
  promise.set_value(reply.SerializeAsString());
}

// Starts answering one request; `promise` gets the serialized reply.
void Answer(const std::string& message, const ModelConfig& config,
            const WorkerIdentity& identity, ComputeQueue& queue,
            std::shared_ptr<ReplyPromise> promise) {
  auto request = std::make_shared<v1::LinkRequest>();
  if (!request->ParseFromString(message)) {
    Reply(*promise, absl::InvalidArgumentError(
                        "link frame: not a serialized moe.v1.LinkRequest"));
    return;
  }
  absl::StatusOr<ComputeTask> task =
      MakeComputeTask(request->compute(), queue.store(), identity.id);
  if (!task.ok()) {
    Reply(*promise, task.status());
    return;
  }
  const absl::Time deadline =
      request->timeout_us() > 0
          ? absl::Now() + absl::Microseconds(request->timeout_us())
          : absl::InfiniteFuture();
  task->abandoned = [deadline] { return absl::Now() > deadline; };
  const int64_t hidden = config.hidden_size;
  task->done = [request, hidden, promise](absl::Status status,
                                          std::vector<float> out,
                                          ComputeStats stats) {
    v1::LinkReply reply;
    if (status.ok()) {
      FillComputeResponse(request->compute(), out, hidden, stats,
                          reply.mutable_compute());
    }
    Reply(*promise, status, std::move(reply));
  };
  if (absl::Status queued = queue.Submit(std::move(*task)); !queued.ok()) {
    Reply(*promise, queued);
  }
}

}  // namespace

void ServeLink(MessageLink& link, const ModelConfig& config,
               const WorkerIdentity& identity, ComputeQueue& queue) {
  std::mutex mutex;
  std::condition_variable queued;
  std::deque<std::future<std::string>> replies;
  bool receiving = true;
  std::thread sender([&] {
    while (true) {
      std::future<std::string> next;
      {
        std::unique_lock<std::mutex> lock(mutex);
        queued.wait(lock, [&] { return !replies.empty() || !receiving; });
        if (replies.empty()) return;
        next = std::move(replies.front());
        replies.pop_front();
      }
      // A failed send means the link broke: Receive fails too and ends the
      // loop below; the replies still owed are dropped with the link.
      link.Send(next.get()).IgnoreError();
    }
  });
  while (true) {
    absl::StatusOr<std::string> message = link.Receive(absl::InfiniteFuture());
    if (!message.ok()) break;
    auto promise = std::make_shared<ReplyPromise>();
    {
      std::lock_guard<std::mutex> lock(mutex);
      replies.push_back(promise->get_future());
    }
    queued.notify_one();
    Answer(*message, config, identity, queue, std::move(promise));
  }
  {
    std::lock_guard<std::mutex> lock(mutex);
    receiving = false;
  }
  queued.notify_one();
  sender.join();
}

}  // namespace moe

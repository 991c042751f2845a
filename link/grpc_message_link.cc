#include "link/grpc_message_link.h"

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"

namespace moe {
namespace {

// A link over one bidirectional gRPC stream (client or server end). A thread
// reads ahead into an inbox, so that Receive can give up at its deadline:
// gRPC's blocking Read has none of its own.
template <typename Stream>
class GrpcStreamLink : public MessageLink {
 public:
  GrpcStreamLink(Stream& stream, std::function<void()> cancel,
                 std::function<void()> on_end)
      : stream_(stream),
        cancel_(std::move(cancel)),
        on_end_(std::move(on_end)) {
    reader_ = std::thread([this] { ReadAll(); });
  }
  ~GrpcStreamLink() override {
    Close();
    reader_.join();
  }

  absl::Status Send(std::string_view message) override {
    v1::LinkFrame frame;
    frame.set_data(std::string(message));
    std::lock_guard<std::mutex> lock(send_mutex_);
    if (closed_.load() || !stream_.Write(frame)) {
      return absl::UnavailableError("the link's gRPC stream has ended");
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> Receive(absl::Time deadline) override {
    std::unique_lock<std::mutex> lock(inbox_mutex_);
    auto ready_to_return = [this] {
      return !inbox_.empty() || ended_ || closed_.load();
    };
    // An infinite deadline as a time point would overflow the wait's clock
    // conversion.
    const bool ready =
        deadline == absl::InfiniteFuture()
            ? (arrived_.wait(lock, ready_to_return), true)
            : arrived_.wait_until(lock, absl::ToChronoTime(deadline),
                                  ready_to_return);
    if (!inbox_.empty() && !closed_.load()) {
      std::string message = std::move(inbox_.front());
      inbox_.pop_front();
      return message;
    }
    if (!ready) {
      lock.unlock();
      Close();
      return absl::DeadlineExceededError(
          "no message on the link's gRPC stream by the deadline");
    }
    return absl::UnavailableError(closed_.load()
                                      ? "the link was closed"
                                      : "the link's gRPC stream has ended");
  }

  void Close() override {
    if (closed_.exchange(true)) return;
    cancel_();
    std::lock_guard<std::mutex> lock(inbox_mutex_);
    arrived_.notify_all();
  }

 private:
  void ReadAll() {
    v1::LinkFrame frame;
    while (stream_.Read(&frame)) {
      std::lock_guard<std::mutex> lock(inbox_mutex_);
      inbox_.push_back(std::move(*frame.mutable_data()));
      arrived_.notify_all();
    }
    {
      std::lock_guard<std::mutex> lock(inbox_mutex_);
      ended_ = true;
      arrived_.notify_all();
    }
    if (on_end_) on_end_();
  }

  Stream& stream_;
  const std::function<void()> cancel_;
  const std::function<void()> on_end_;
  std::atomic<bool> closed_{false};
  std::mutex send_mutex_;
  std::mutex inbox_mutex_;
  std::condition_variable arrived_;
  std::deque<std::string> inbox_;
  bool ended_ = false;
  std::thread reader_;
};

using ClientStream = grpc::ClientReaderWriter<v1::LinkFrame, v1::LinkFrame>;

// The client end owns its call: the link goes first (its reader joined),
// then the stream is finished, then the context goes.
class ClientStreamLink : public MessageLink {
 public:
  ClientStreamLink(v1::ExpertLink::Stub& stub, const std::string& nccl_link_id,
                   std::function<void()> on_end)
      : stream_(StartStream(stub, nccl_link_id)),
        link_(std::make_unique<GrpcStreamLink<ClientStream>>(
            *stream_, [this] { context_.TryCancel(); }, std::move(on_end))) {}
  ~ClientStreamLink() override {
    link_.reset();
    stream_->Finish().IgnoreError();
  }

  absl::Status Send(std::string_view message) override {
    return link_->Send(message);
  }
  absl::StatusOr<std::string> Receive(absl::Time deadline) override {
    return link_->Receive(deadline);
  }
  void Close() override { link_->Close(); }

 private:
  std::unique_ptr<ClientStream> StartStream(v1::ExpertLink::Stub& stub,
                                            const std::string& nccl_link_id) {
    if (!nccl_link_id.empty()) {
      context_.AddMetadata(kNcclLinkIdKey, nccl_link_id);
    }
    return stub.Stream(&context_);
  }

  grpc::ClientContext context_;
  std::unique_ptr<ClientStream> stream_;
  std::unique_ptr<MessageLink> link_;
};

}  // namespace

std::unique_ptr<MessageLink> OpenGrpcStreamLink(v1::ExpertLink::Stub& stub,
                                                const std::string& nccl_link_id,
                                                std::function<void()> on_end) {
  return std::make_unique<ClientStreamLink>(stub, nccl_link_id,
                                            std::move(on_end));
}

std::string NcclLinkIdOf(const grpc::ServerContext& context) {
  const auto& metadata = context.client_metadata();
  const auto found = metadata.find(kNcclLinkIdKey);
  if (found == metadata.end()) return "";
  return std::string(found->second.data(), found->second.size());
}

std::unique_ptr<MessageLink> ServeGrpcStreamLink(
    grpc::ServerContext& context,
    grpc::ServerReaderWriter<v1::LinkFrame, v1::LinkFrame>& stream,
    std::function<void()> on_end) {
  using ServerStream = grpc::ServerReaderWriter<v1::LinkFrame, v1::LinkFrame>;
  return std::make_unique<GrpcStreamLink<ServerStream>>(
      stream, [&context] { context.TryCancel(); }, std::move(on_end));
}

}  // namespace moe

#include "gateway/generate_call.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "rpc/grpc_status.h"

namespace moe {

GenerateCall::GenerateCall(GatewayParts parts,
                           grpc::CallbackServerContext* context,
                           v1::RouterGenerateRequest router_request,
                           std::vector<std::string> stops,
                           std::optional<ApiKeys::Lease> key,
                           absl::Time arrived)
    : parts_(parts),
      server_context_(context),
      arrived_(arrived),
      key_(std::move(key)),
      router_request_(std::move(router_request)),
      // Without the prompt as context: the streamed text must concatenate to
      // the plain decode of the generated ids (Detokenize), which for
      // SentencePiece drops the first token's leading space.
      detokenizer_(parts.tokenizer),
      stop_matcher_(std::move(stops)) {
  pending_.set_request_id(router_request_.request_id());
}

void GenerateCall::Begin() {
  const absl::Status admitted =
      parts_.admission.Admit(this, [this] { StartRouterCall(); });
  if (admitted.ok()) return;
  parts_.ids.Release(router_request_.request_id());
  std::unique_lock<std::mutex> lock(mutex_);
  phase_ = Phase::kEnded;
  error_ = ToGrpcStatus(admitted);
  Advance(lock);
}

void GenerateCall::StartRouterCall() {
  std::unique_lock<std::mutex> lock(mutex_);
  holds_slot_ = true;
  if (client_gone_) {
    // Cancelled while waiting for this slot.
    phase_ = Phase::kEnded;
    lock.unlock();
    ReleaseResources();
    lock.lock();
    Advance(lock);
    return;
  }
  phase_ = Phase::kRunning;
  parts_.metrics.ObservePromptTokens(router_request_.prompt_token_ids_size());
  CallRouter(lock);
}

void GenerateCall::CallRouter(std::unique_lock<std::mutex>& lock) {
  const RouterPool::Lease lease = parts_.routers.Acquire(routers_tried_);
  router_index_ = lease.index;
  routers_tried_.push_back(lease.index);
  grpc::ClientContext& context =
      *router_contexts_.emplace_back(std::make_unique<grpc::ClientContext>());
  RouterReader& reader =
      *readers_.emplace_back(std::make_unique<RouterReader>(*this));
  // The client's deadline bounds the router's work; a call without one
  // reports the end of time.
  const auto deadline = server_context_->deadline();
  if (deadline <
      std::chrono::system_clock::now() + std::chrono::hours(24 * 365)) {
    context.set_deadline(deadline);
  }
  lock.unlock();
  // A cancel from now on reaches the router call through TryCancel, which
  // also holds for a call that has not started yet.
  lease.stub->async()->Generate(&context, &router_request_, &reader);
  reader.StartRead(&router_response_);
  reader.StartCall();
}

bool GenerateCall::ShouldRetry(const grpc::Status& status) const {
  return status.error_code() == grpc::StatusCode::UNAVAILABLE &&
         completion_tokens_ == 0 && !client_gone_ && !error_.has_value() &&
         static_cast<int>(routers_tried_.size()) < parts_.routers.size() &&
         !parts_.routers.Reachable(router_index_);
}

void GenerateCall::OnRouterRead(bool ok) {
  if (!ok) return;  // the stream ended: OnRouterDone follows
  bool more = true;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    if (final_ready_ || error_.has_value()) return;
    const int tokens_before = completion_tokens_;
    for (int32_t token : router_response_.token_ids()) {
      more = TakeToken(token);
      if (!more) break;
    }
    ObserveTokens(completion_tokens_ - tokens_before);
    if (more &&
        router_response_.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
      router_finish_ = router_response_.finish_reason();
    }
    Advance(lock);
  }
  // Reads and cancels happen only while this router call runs: no retry
  // replaces it meanwhile.
  if (more) {
    readers_.back()->StartRead(&router_response_);
  } else {
    // A stop string or a failure ended the stream here: the router frees
    // the request's KV cache and batch slot.
    router_contexts_.back()->TryCancel();
  }
}

void GenerateCall::ObserveTokens(int tokens) {
  if (tokens == 0) return;
  const absl::Time now = absl::Now();
  const bool first = last_tokens_at_ == absl::Time();
  parts_.metrics.ObserveTokens(
      tokens, now - (first ? arrived_ : last_tokens_at_), first);
  last_tokens_at_ = now;
}

bool GenerateCall::TakeToken(int32_t token) {
  pending_.add_token_ids(token);
  ++completion_tokens_;
  absl::StatusOr<std::string> text = detokenizer_.Append(token);
  if (!text.ok()) {
    error_ = grpc::Status(grpc::StatusCode::INTERNAL,
                          absl::StrCat("detokenizing generated token ", token,
                                       ": ", text.status().message()));
    return false;
  }
  StopMatcher::Result released = stop_matcher_.Push(*text);
  pending_.mutable_text()->append(released.text);
  if (released.matched) SetFinal(v1::FINISH_REASON_STOP);
  return !released.matched;
}

void GenerateCall::SetFinal(v1::FinishReason reason) {
  pending_.set_finish_reason(reason);
  pending_.mutable_usage()->set_prompt_tokens(
      router_request_.prompt_token_ids_size());
  pending_.mutable_usage()->set_completion_tokens(completion_tokens_);
  final_ready_ = true;
}

void GenerateCall::OnRouterDone(const grpc::Status& status) {
  {
    std::unique_lock<std::mutex> lock(mutex_);
    if (ShouldRetry(status)) {
      parts_.routers.Release(router_index_);
      CallRouter(lock);
      return;
    }
  }
  ReleaseResources();
  std::unique_lock<std::mutex> lock(mutex_);
  phase_ = Phase::kEnded;
  if (!final_ready_ && !error_.has_value()) {
    // Router.Cancel by an operator ends the stream CANCELLED while this
    // gateway's client is still there: a regular end for the client.
    const bool operator_cancel =
        status.error_code() == grpc::StatusCode::CANCELLED && !client_gone_;
    if (status.ok() && router_finish_ == v1::FINISH_REASON_UNSPECIFIED) {
      error_ = grpc::Status(
          grpc::StatusCode::INTERNAL,
          absl::StrCat("router ", parts_.routers.address(router_index_),
                       " ended the stream without a finish reason"));
    } else if (status.ok() || operator_cancel) {
      absl::StatusOr<std::string> rest = detokenizer_.Flush();
      if (!rest.ok()) {
        error_ = grpc::Status(grpc::StatusCode::INTERNAL,
                              std::string(rest.status().message()));
      } else {
        StopMatcher::Result released = stop_matcher_.Push(*rest);
        pending_.mutable_text()->append(released.text);
        if (!released.matched) {
          pending_.mutable_text()->append(stop_matcher_.Flush());
        }
        SetFinal(released.matched ? v1::FINISH_REASON_STOP
                 : status.ok()    ? router_finish_
                                  : v1::FINISH_REASON_CANCELLED);
      }
    } else {
      error_ = status;  // UNAVAILABLE naming a worker, deadline, ...
    }
  }
  Advance(lock);
}

void GenerateCall::ReleaseResources() {
  if (router_index_ >= 0) parts_.routers.Release(router_index_);
  parts_.ids.Release(router_request_.request_id());
}

void GenerateCall::ReleaseSlots() {
  if (key_.has_value()) {
    // The router ran the prompt and every token sampled, streamed or not.
    key_->AddTokens(router_request_.prompt_token_ids_size() +
                    completion_tokens_);
    key_.reset();
  }
  // May start a waiting request on this thread: nothing is locked here.
  if (holds_slot_) parts_.admission.Release();
}

void GenerateCall::OnWriteDone(bool ok) {
  std::unique_lock<std::mutex> lock(mutex_);
  writing_ = false;
  // A failed write means the client is gone: stop generating for it.
  if (!ok) client_gone_ = true;
  grpc::ClientContext* cancel_router = !ok && phase_ == Phase::kRunning
                                           ? router_contexts_.back().get()
                                           : nullptr;
  Advance(lock);
  // Still running, so not finished by Advance: `this` is alive.
  if (cancel_router != nullptr) cancel_router->TryCancel();
}

void GenerateCall::OnCancel() {
  std::unique_lock<std::mutex> lock(mutex_);
  client_gone_ = true;
  const Phase phase = phase_;
  // The live router call: a retry after this sees client_gone_ and starts
  // none.
  grpc::ClientContext* router_call =
      phase == Phase::kRunning ? router_contexts_.back().get() : nullptr;
  lock.unlock();
  if (router_call != nullptr) {
    router_call->TryCancel();
  } else if (phase == Phase::kWaiting && parts_.admission.Withdraw(this)) {
    // Never started: no slot to return.
    parts_.ids.Release(router_request_.request_id());
    lock.lock();
    phase_ = Phase::kEnded;
    Advance(lock);
  }
  // Otherwise StartRouterCall is about to run and sees client_gone_.
}

void GenerateCall::Advance(std::unique_lock<std::mutex>& lock) {
  std::optional<grpc::Status> finish = NextWrite();
  lock.unlock();
  if (!finish.has_value()) return;
  ReleaseSlots();
  parts_.metrics.ObserveEnd(*finish);
  parts_.metrics.ObserveDuration(absl::Now() - arrived_);
  Finish(*finish);
}

std::optional<grpc::Status> GenerateCall::NextWrite() {
  if (writing_ || finished_) return std::nullopt;
  const bool has_news =
      !pending_.text().empty() || pending_.token_ids_size() > 0 || final_ready_;
  if (!client_gone_ && !error_.has_value() && !final_written_ && has_news) {
    response_ = std::move(pending_);
    pending_.Clear();
    pending_.set_request_id(router_request_.request_id());
    final_written_ = final_ready_;
    writing_ = true;
    StartWrite(&response_);
    return std::nullopt;
  }
  // Finish only once the router call has ended too: its callbacks use this
  // reactor.
  if (phase_ != Phase::kEnded) return std::nullopt;
  if (error_.has_value()) {
    finished_ = true;
    return *error_;
  }
  if (final_written_) {
    finished_ = true;
    return grpc::Status::OK;
  }
  if (client_gone_) {
    finished_ = true;
    return grpc::Status(grpc::StatusCode::CANCELLED, "the client cancelled");
  }
  return std::nullopt;
}

}  // namespace moe

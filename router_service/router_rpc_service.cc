#include "router_service/router_rpc_service.h"

#include <chrono>
#include <mutex>
#include <optional>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "rpc/grpc_status.h"

namespace moe {
namespace {

v1::FinishReason ToProto(FinishReason reason) {
  return reason == FinishReason::kEos ? v1::FINISH_REASON_EOS
                                      : v1::FINISH_REASON_LENGTH;
}

GenerationRequest FromProto(const v1::RouterGenerateRequest& request) {
  GenerationRequest generation;
  generation.prompt.assign(request.prompt_token_ids().begin(),
                           request.prompt_token_ids().end());
  generation.max_tokens = request.max_tokens();
  generation.stop_on_eos = !request.ignore_eos();
  const v1::SamplingParameters& sampling = request.sampling();
  generation.sampling.temperature = sampling.temperature();
  generation.sampling.top_k = sampling.top_k();
  generation.sampling.top_p = sampling.top_p() == 0 ? 1.0f : sampling.top_p();
  if (sampling.seed() >= 0) generation.sampling.seed = sampling.seed();
  return generation;
}

// One Generate stream. Tokens from the engine thread queue up here and go
// out one write at a time (merged while a write is in flight); the stream
// finishes once the engine has ended the request and everything is written.
// The engine calls back until on_finish, and Finish comes only after it, so
// the reactor outlives every callback (it deletes itself in OnDone).
class GenerateReactor
    : public grpc::ServerWriteReactor<v1::RouterGenerateResponse> {
 public:
  GenerateReactor(BatchEngine& engine, std::string id, int prompt_tokens)
      : engine_(engine), id_(std::move(id)), prompt_tokens_(prompt_tokens) {}

  void Start(EngineRequest request) {
    request.id = id_;
    request.on_token = [this](int32_t token) {
      std::unique_lock<std::mutex> lock(mutex_);
      pending_.push_back(token);
      ++completion_tokens_;
      Advance(lock);
    };
    request.on_finish = [this](absl::StatusOr<FinishReason> outcome) {
      std::unique_lock<std::mutex> lock(mutex_);
      outcome_ = std::move(outcome);
      Advance(lock);
    };
    {
      std::lock_guard<std::mutex> lock(mutex_);
      live_ = true;
    }
    const absl::Status submitted = engine_.Submit(std::move(request));
    if (!submitted.ok()) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        live_ = false;
        finished_ = true;
      }
      Finish(ToGrpcStatus(submitted));
    }
  }

  void OnWriteDone(bool ok) override {
    std::unique_lock<std::mutex> lock(mutex_);
    writing_ = false;
    if (!ok) {
      // The client is gone: stop generating for it.
      stream_broken_ = true;
      CancelIfLive();
    }
    Advance(lock);
  }

  void OnCancel() override {
    std::lock_guard<std::mutex> lock(mutex_);
    CancelIfLive();
  }

  void OnDone() override { delete this; }

 private:
  // Only while the engine runs this request: its id may be reused once it
  // ended (or was never accepted), by another client's request.
  void CancelIfLive() {
    if (live_ && !outcome_.has_value()) engine_.Cancel(id_).IgnoreError();
  }

  // Writes what is pending, or finishes the stream once the request ended
  // and everything is written. Finish is called after the lock is released
  // and last: from then on OnDone may delete the reactor on another thread.
  void Advance(std::unique_lock<std::mutex>& lock) {
    std::optional<grpc::Status> finish = NextWrite();
    lock.unlock();
    if (finish.has_value()) Finish(*finish);
  }

  // Starts the next write, or returns the status to finish with.
  std::optional<grpc::Status> NextWrite() {
    if (writing_ || finished_) return std::nullopt;
    const bool ended_ok = outcome_.has_value() && outcome_->ok();
    if (!stream_broken_ &&
        (!pending_.empty() || (ended_ok && !final_written_))) {
      response_.Clear();
      response_.set_request_id(id_);
      response_.mutable_token_ids()->Add(pending_.begin(), pending_.end());
      pending_.clear();
      if (ended_ok) {
        response_.set_finish_reason(ToProto(**outcome_));
        response_.set_prompt_tokens(prompt_tokens_);
        response_.set_completion_tokens(completion_tokens_);
        final_written_ = true;
      }
      writing_ = true;
      StartWrite(&response_);
      return std::nullopt;
    }
    if (!outcome_.has_value()) return std::nullopt;
    finished_ = true;
    return outcome_->ok() ? grpc::Status::OK : ToGrpcStatus(outcome_->status());
  }

  BatchEngine& engine_;
  const std::string id_;
  const int prompt_tokens_;
  std::mutex mutex_;
  std::vector<int32_t> pending_;
  int completion_tokens_ = 0;
  std::optional<absl::StatusOr<FinishReason>> outcome_;
  v1::RouterGenerateResponse response_;
  bool live_ = false;  // submitted to the engine (maybe already ended)
  bool writing_ = false;
  bool final_written_ = false;
  bool stream_broken_ = false;
  bool finished_ = false;
};

// Ends a stream at once with an error.
class RejectedReactor
    : public grpc::ServerWriteReactor<v1::RouterGenerateResponse> {
 public:
  explicit RejectedReactor(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

constexpr char kGeneratedIdPrefix[] = "router-";

}  // namespace

RouterRpcService::RouterRpcService(BatchEngine& engine,
                                   const ModelConfig& config,
                                   const GrpcExpertDispatch* remote,
                                   const AdminAccess& admin,
                                   const std::atomic<bool>* draining)
    : engine_(engine),
      config_(config),
      remote_(remote),
      admin_(admin),
      draining_(draining),
      load_recorder_(
          load_,
          [this] {
            LoadCounts counts;
            counts.routed_tokens = engine_.Status().routed_counts;
            if (remote_ == nullptr) return counts;
            for (const WorkerCallStats& stats : remote_->Stats()) {
              counts.workers.push_back({stats.id, stats.calls, stats.rows_sent,
                                        stats.total_worker_compute_us / 1e6,
                                        stats.total_worker_wait_us / 1e6,
                                        stats.total_round_trip_us / 1e6});
            }
            return counts;
          },
          absl::Seconds(1)) {}

grpc::ServerWriteReactor<v1::RouterGenerateResponse>*
RouterRpcService::Generate(grpc::CallbackServerContext* context,
                           const v1::RouterGenerateRequest* request) {
  if (draining_ != nullptr && draining_->load()) {
    return new RejectedReactor(grpc::Status(
        grpc::StatusCode::UNAVAILABLE,
        "moe-router is draining (SIGTERM): it finishes the requests it has "
        "and takes no new ones"));
  }
  std::string id = request->request_id();
  if (absl::StartsWith(id, kGeneratedIdPrefix)) {
    grpc::ServerWriteReactor<v1::RouterGenerateResponse>* reactor =
        new RejectedReactor(grpc::Status(
            grpc::StatusCode::INVALID_ARGUMENT,
            absl::StrCat("request_id: ids starting with \"", kGeneratedIdPrefix,
                         "\" are the router's own")));
    return reactor;
  }
  if (id.empty()) id = absl::StrCat(kGeneratedIdPrefix, next_id_.fetch_add(1));
  auto* reactor =
      new GenerateReactor(engine_, id, request->prompt_token_ids_size());
  EngineRequest engine_request;
  engine_request.generation = FromProto(*request);
  // A call without a deadline reports the end of time, beyond absl::Time.
  const auto deadline = context->deadline();
  if (deadline <
      std::chrono::system_clock::now() + std::chrono::hours(24 * 365)) {
    engine_request.deadline = absl::FromChrono(deadline);
  }
  reactor->Start(std::move(engine_request));
  return reactor;
}

grpc::ServerUnaryReactor* RouterRpcService::Cancel(
    grpc::CallbackServerContext* context, const v1::CancelRequest* request,
    v1::CancelResponse*) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status status = admin_.Check(*context, "Cancel");
  if (status.ok()) status = engine_.Cancel(request->request_id());
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* RouterRpcService::GetStatus(
    grpc::CallbackServerContext* context, const v1::RouterStatusRequest*,
    v1::RouterStatus* reply) {
  const EngineStatus status = engine_.Status();
  reply->set_queued_requests(status.queued);
  reply->set_running_requests(status.running);
  reply->set_max_batch_size(engine_.options().max_batch);
  reply->set_kv_tokens_used(status.kv_tokens_used);
  reply->set_kv_tokens_capacity(status.kv_blocks_total *
                                engine_.kv_block_size());
  reply->set_kv_blocks_total(status.kv_blocks_total);
  reply->set_kv_blocks_free(status.kv_blocks_free);
  reply->set_kv_block_size(engine_.kv_block_size());
  reply->set_prefill_tokens(status.prefill_tokens);
  reply->set_preemptions(status.preemptions);
  reply->set_forward_passes(status.runner.forward_passes);
  reply->set_split_passes(status.runner.split_passes);
  reply->set_attention_us(status.runner.attention_us);
  reply->set_overlapped_attention_us(status.runner.overlapped_attention_us);
  reply->set_expert_wait_us(status.runner.expert_wait_us);
  reply->set_placement_version(remote_ ? remote_->placement_version() : 0);
  reply->set_num_layers(config_.num_layers);
  reply->set_num_experts(config_.num_experts);
  reply->mutable_routed_token_counts()->Add(status.routed_counts.begin(),
                                            status.routed_counts.end());
  reply->set_steps(status.steps);
  reply->set_generated_tokens(status.generated_tokens);
  if (remote_ != nullptr) {
    for (const WorkerCallStats& stats : remote_->Stats()) {
      v1::WorkerStatus* worker = reply->add_workers();
      worker->set_worker_id(stats.id);
      worker->set_address(stats.address);
      worker->set_calls(stats.calls);
      worker->set_failed_calls(stats.failed_calls);
      worker->set_rows_sent(stats.rows_sent);
      worker->set_links_opened(stats.links_opened);
      worker->set_down(stats.down);
      worker->set_rows_failed_over(stats.rows_failed_over);
      worker->set_recoveries(stats.recoveries);
      worker->set_mean_round_trip_us(
          stats.calls ? stats.total_round_trip_us / stats.calls : 0.0);
    }
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* RouterRpcService::GetLoad(
    grpc::CallbackServerContext* context, const v1::LoadRequest* request,
    v1::LoadReport* reply) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (request->window_seconds() < 0) {
    reactor->Finish(
        grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                     absl::StrCat("window_seconds must be >= 0, got ",
                                  request->window_seconds())));
    return reactor;
  }
  const absl::Duration window = request->window_seconds() == 0
                                    ? absl::Seconds(60)
                                    : absl::Seconds(request->window_seconds());
  LoadWindow::Load load = load_.Over(window);
  // Before the second sample: nothing counted yet.
  load.counts.routed_tokens.resize(
      static_cast<size_t>(config_.num_layers) * config_.num_experts, 0);
  reply->set_window_seconds(absl::ToDoubleSeconds(load.span));
  reply->set_num_layers(config_.num_layers);
  reply->set_num_experts(config_.num_experts);
  reply->mutable_routed_tokens()->Add(load.counts.routed_tokens.begin(),
                                      load.counts.routed_tokens.end());
  for (const LoadCounts::Worker& counts : load.counts.workers) {
    v1::WorkerLoad* worker = reply->add_workers();
    worker->set_worker_id(counts.id);
    worker->set_calls(counts.calls);
    worker->set_rows(counts.rows);
    worker->set_compute_seconds(counts.compute_seconds);
    worker->set_queue_seconds(counts.queue_seconds);
    worker->set_round_trip_seconds(counts.round_trip_seconds);
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace moe

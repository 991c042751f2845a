#include "router_service/grpc_expert_dispatch.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/time/clock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "link/grpc_message_link.h"
#include "link/nccl_worker_link.h"
#include "rpc/grpc_status.h"
#include "rpc/tensor_codec.h"

namespace moe {

// One worker's share of a layer: its rows (each once) and their assignments.
struct GrpcExpertDispatch::Call {
  int worker = 0;
  std::vector<int32_t> rows;                // batch row of each request row
  std::vector<std::vector<Routed>> routed;  // per request row
  // The call as an activation link sends it; its `compute` is the request
  // of a Compute RPC.
  v1::LinkRequest link_request;
  v1::ComputeRequest& request = *link_request.mutable_compute();
  v1::ComputeResponse response;
  grpc::ClientContext context;
  grpc::Status status;
  absl::Time deadline;  // the latest of its rows' deadlines
  absl::Time started;
  absl::Duration round_trip;
};

absl::StatusOr<ActivationLinkKind> ParseActivationLinkKind(
    const std::string& name) {
  if (name == "rpc") return ActivationLinkKind::kRpc;
  if (name == "stream") return ActivationLinkKind::kStream;
  if (name == "nccl") return ActivationLinkKind::kNccl;
  return absl::InvalidArgumentError(absl::StrCat(
      "--activation-link: \"", name, "\" is not rpc, stream or nccl"));
}

namespace {

// A new activation link to a worker: over NCCL when asked for and the
// worker computes on a GPU (asked each time: a restarted worker may not),
// else over a gRPC stream.
absl::StatusOr<std::unique_ptr<MessageLink>> OpenActivationLink(
    v1::ExpertWorker::Stub& worker, v1::ExpertLink::Stub& link,
    const GrpcExpertDispatch::Options& options) {
  if (options.link == ActivationLinkKind::kNccl) {
    grpc::ClientContext context;
    context.set_deadline(
        absl::ToChronoTime(absl::Now() + options.link_connect_timeout));
    v1::WorkerDescription description;
    const grpc::Status described =
        worker.Describe(&context, v1::DescribeRequest(), &description);
    if (!described.ok()) return FromGrpcStatus(described);
    if (description.device().starts_with("cuda:")) {
      return OpenNcclWorkerLink(link, options.nccl_device,
                                options.link_connect_timeout);
    }
  }
  return OpenGrpcStreamLink(link);
}

}  // namespace

absl::StatusOr<std::vector<WorkerEndpoint>> ParseWorkerEndpoints(
    const std::string& spec) {
  std::vector<WorkerEndpoint> endpoints;
  for (absl::string_view item : absl::StrSplit(spec, ',', absl::SkipEmpty())) {
    const std::vector<std::string> parts = absl::StrSplit(item, '=');
    if (parts.size() != 2 || parts[0].empty() ||
        parts[1].find(':') == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--workers: \"", std::string(item), "\" is not id=host:port"));
    }
    endpoints.push_back({parts[0], parts[1]});
  }
  return endpoints;
}

absl::StatusOr<std::unique_ptr<GrpcExpertDispatch>> GrpcExpertDispatch::Connect(
    const PlacementPlan& plan, int hidden_size,
    const std::vector<WorkerEndpoint>& endpoints, const Options& options) {
  auto dispatch = std::unique_ptr<GrpcExpertDispatch>(
      new GrpcExpertDispatch(plan, hidden_size, options));
  std::map<std::string, const WorkerEndpoint*> by_id;
  for (const WorkerEndpoint& endpoint : endpoints) {
    if (plan.WorkerIndex(endpoint.id) < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--workers: \"", endpoint.id, "\" is not a worker of the plan"));
    }
    if (!by_id.emplace(endpoint.id, &endpoint).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("--workers: \"", endpoint.id, "\" is listed twice"));
    }
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(256 << 20);
  args.SetMaxSendMessageSize(256 << 20);
  // A restarted worker is reachable again within a second, not after the
  // default backoff of up to two minutes.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // A worker whose host vanished without closing its connections (a crash,
  // a partition) is noticed within seconds, also by an idle activation
  // link whose next write would otherwise wait for TCP to give up.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  for (const WorkerSpec& spec : plan.workers) {
    auto it = by_id.find(spec.id);
    if (it == by_id.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--workers: no address for plan worker \"", spec.id, "\""));
    }
    auto worker = std::make_unique<Worker>();
    worker->endpoint = *it->second;
    worker->speed = spec.speed > 0 ? spec.speed : 1.0;
    const std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(
        worker->endpoint.address, grpc::InsecureChannelCredentials(), args);
    worker->stub = v1::ExpertWorker::NewStub(channel);
    worker->link_stub = v1::ExpertLink::NewStub(channel);
    if (options.link != ActivationLinkKind::kRpc) {
      Worker* raw = worker.get();
      worker->link = std::make_unique<WorkerLink>(
          [raw, options] {
            return OpenActivationLink(*raw->stub, *raw->link_stub, options);
          },
          options.call_timeout);
    }
    WorkerCallStats stats;
    stats.id = spec.id;
    stats.address = worker->endpoint.address;
    dispatch->stats_.push_back(stats);
    dispatch->workers_.push_back(std::move(worker));
  }
  std::vector<std::string> names;
  for (const std::unique_ptr<Worker>& worker : dispatch->workers_) {
    names.push_back(absl::StrCat("expert worker ", worker->endpoint.id, " at ",
                                 worker->endpoint.address));
  }
  GrpcExpertDispatch* raw = dispatch.get();
  dispatch->health_ = std::make_unique<WorkerHealth>(
      std::move(names),
      [raw](int worker) {
        return raw->Probe(*raw->workers_[worker], absl::Seconds(1));
      },
      options.probe_interval);
  return dispatch;
}

absl::Status GrpcExpertDispatch::CheckWorker(
    const Worker& worker, const v1::WorkerDescription& description) const {
  const std::string name = absl::StrCat("expert worker ", worker.endpoint.id,
                                        " at ", worker.endpoint.address);
  if (description.worker_id() != worker.endpoint.id) {
    return absl::FailedPreconditionError(
        absl::StrCat(name, " says it is \"", description.worker_id(), "\""));
  }
  if (description.placement_version() != plan_.version ||
      description.hidden_size() != hidden_size_) {
    return absl::FailedPreconditionError(
        absl::StrCat(name, " serves plan version ",
                     description.placement_version(), " with rows of ",
                     description.hidden_size(), "; the router has version ",
                     plan_.version, " and rows of ", hidden_size_));
  }
  std::vector<std::pair<int, int>> held;
  for (const v1::ExpertId& id : description.experts()) {
    held.emplace_back(id.layer(), id.expert());
  }
  std::sort(held.begin(), held.end());
  for (const auto& [layer, expert] :
       plan_.ExpertsOf(plan_.WorkerIndex(worker.endpoint.id))) {
    if (!std::binary_search(held.begin(), held.end(),
                            std::make_pair(layer, expert))) {
      return absl::FailedPreconditionError(
          absl::StrCat(name, " does not hold expert ", expert, " of layer ",
                       layer, " as the plan says"));
    }
  }
  return absl::OkStatus();
}

absl::Status GrpcExpertDispatch::Probe(const Worker& worker,
                                       absl::Duration timeout) const {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  v1::WorkerDescription description;
  const grpc::Status status =
      worker.stub->Describe(&context, v1::DescribeRequest(), &description);
  if (!status.ok()) return FromGrpcStatus(status);
  return CheckWorker(worker, description);
}

absl::Status GrpcExpertDispatch::AwaitWorkers(absl::Duration timeout) {
  const absl::Time give_up = absl::Now() + timeout;
  for (const std::unique_ptr<Worker>& worker : workers_) {
    while (true) {
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(
          std::min(give_up, absl::Now() + absl::Seconds(1))));
      context.set_wait_for_ready(true);
      v1::WorkerDescription description;
      const grpc::Status status =
          worker->stub->Describe(&context, v1::DescribeRequest(), &description);
      if (status.ok()) {
        absl::Status checked = CheckWorker(*worker, description);
        if (!checked.ok()) return checked;
        break;
      }
      if (absl::Now() >= give_up) {
        return absl::UnavailableError(absl::StrCat(
            "expert worker ", worker->endpoint.id, " at ",
            worker->endpoint.address, " did not answer within ",
            absl::FormatDuration(timeout), ": ", status.error_message()));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  return absl::OkStatus();
}

int GrpcExpertDispatch::PickHolder(
    int layer, int expert, const std::vector<int>& tried,
    const std::vector<int64_t>& rows_this_call) const {
  int best = -1;
  bool best_up = false;
  double best_load = 0;
  for (int holder : plan_.Holders(layer, expert)) {
    if (std::find(tried.begin(), tried.end(), holder) != tried.end()) continue;
    const Worker& worker = *workers_[holder];
    const bool up = health_->up(holder);
    const double load = static_cast<double>(worker.outstanding_rows.load(
                                                std::memory_order_relaxed) +
                                            rows_this_call[holder]) /
                        worker.speed;
    if (best < 0 || (up && !best_up) || (up == best_up && load < best_load)) {
      best = holder;
      best_up = up;
      best_load = load;
    }
  }
  return best;
}

absl::Status GrpcExpertDispatch::NoHolderError(int layer,
                                               const Routed& routed) const {
  std::vector<std::string> tried;
  for (int worker : routed.tried) {
    tried.push_back(workers_[worker]->endpoint.id);
  }
  return absl::UnavailableError(absl::StrCat(
      ExpertName(layer, routed.expert), " has no live holder; tried ",
      absl::StrJoin(tried, ", "), ": ", routed.last_failure.message()));
}

absl::Status GrpcExpertDispatch::CallError(const Worker& worker, int layer,
                                           const grpc::Status& status,
                                           absl::Duration waited) const {
  const std::string name = absl::StrCat("expert worker ", worker.endpoint.id,
                                        " at ", worker.endpoint.address);
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return absl::DeadlineExceededError(
        absl::StrCat(name, " did not answer layer ", layer, " within ",
                     absl::ToInt64Milliseconds(waited), " ms"));
  }
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat(name, " failed layer ", layer, ": ",
                                   status.error_message()));
}

// A layer's calls in flight. Their callbacks refer to it, so it waits for
// all of them before it goes away.
class GrpcExpertDispatch::Pending : public PendingExperts {
 public:
  Pending(GrpcExpertDispatch& dispatch, std::shared_ptr<const Rows> rows,
          float* out, std::vector<std::unique_ptr<Call>> calls,
          std::vector<RowFailure> unplaced)
      : dispatch_(dispatch),
        rows_(std::move(rows)),
        out_(out),
        calls_(std::move(calls)),
        unplaced_(std::move(unplaced)),
        in_flight_(static_cast<int>(calls_.size())) {}
  ~Pending() override {
    if (!waited_) in_flight_.Wait();
  }

  const std::vector<std::unique_ptr<Call>>& calls() const { return calls_; }
  // Called once per call, from gRPC's callback threads.
  void CallDone() { in_flight_.DecrementCount(); }

  // The failed calls' assignments go to other holders, and are waited for
  // in turn, until every one is computed or has no holder left to try.
  absl::Status Wait(std::vector<RowFailure>& failures) override {
    in_flight_.Wait();  // absl allows one Wait per counter
    waited_ = true;
    failures.insert(failures.end(), unplaced_.begin(), unplaced_.end());
    std::vector<Routed> retry;
    for (const std::unique_ptr<Call>& call : calls_) {
      dispatch_.Collect(*call, rows_->layer, out_, failures, retry);
    }
    if (retry.empty()) return absl::OkStatus();
    return dispatch_.Send(rows_, std::move(retry), out_)->Wait(failures);
  }

 private:
  GrpcExpertDispatch& dispatch_;
  const std::shared_ptr<const Rows> rows_;
  float* const out_;
  const std::vector<std::unique_ptr<Call>> calls_;
  const std::vector<RowFailure> unplaced_;
  absl::BlockingCounter in_flight_;
  bool waited_ = false;
};

std::unique_ptr<PendingExperts> GrpcExpertDispatch::Start(
    const ExpertBatch& batch, float* out) {
  std::fill(out, out + batch.n * int64_t{hidden_size_}, 0.0f);
  std::vector<Routed> routed;
  routed.reserve(batch.assignments.size());
  for (const ExpertAssignment& a : batch.assignments) {
    if (a.row < 0 || a.row >= batch.n || a.expert < 0 ||
        a.expert >= plan_.num_experts) {
      return std::make_unique<FinishedExperts>(absl::InvalidArgumentError(
          absl::StrCat("layer ", batch.layer, ": assignment (row ", a.row,
                       ", expert ", a.expert, ") is out of range")));
    }
    routed.push_back({a.row, a.expert, a.weight, {}, absl::OkStatus()});
  }
  auto rows = std::make_shared<Rows>(
      Rows{batch.layer, batch.x, batch.n,
           std::vector<absl::Time>(batch.row_deadlines.begin(),
                                   batch.row_deadlines.end())});
  return Send(std::move(rows), std::move(routed), out);
}

std::unique_ptr<GrpcExpertDispatch::Pending> GrpcExpertDispatch::Send(
    std::shared_ptr<const Rows> rows, std::vector<Routed> routed, float* out) {
  const int64_t hidden = hidden_size_;
  const int layer = rows->layer;
  // Split the assignments by worker, each row once per worker.
  std::vector<std::unique_ptr<Call>> calls(workers_.size());
  std::vector<std::vector<int32_t>> local_row(workers_.size());
  std::vector<int64_t> rows_this_call(workers_.size(), 0);
  std::vector<RowFailure> unplaced;
  for (Routed& r : routed) {
    const int w = PickHolder(layer, r.expert, r.tried, rows_this_call);
    if (w < 0) {
      unplaced.push_back({r.row, NoHolderError(layer, r)});
      continue;
    }
    if (!calls[w]) {
      calls[w] = std::make_unique<Call>();
      calls[w]->worker = w;
      local_row[w].assign(rows->n, -1);
    }
    Call& call = *calls[w];
    int32_t& local = local_row[w][r.row];
    if (local < 0) {
      local = static_cast<int32_t>(call.rows.size());
      call.rows.push_back(r.row);
      call.routed.emplace_back();
      ++rows_this_call[w];
    }
    call.routed[local].push_back(std::move(r));
  }
  std::erase(calls, nullptr);
  std::vector<float> values;
  for (const std::unique_ptr<Call>& call : calls) {
    const int64_t n = static_cast<int64_t>(call->rows.size());
    values.resize(n * hidden);
    absl::Time deadline = absl::InfinitePast();
    for (int64_t i = 0; i < n; ++i) {
      std::copy_n(rows->x + call->rows[i] * hidden, hidden,
                  values.data() + i * hidden);
      deadline = std::max(deadline, rows->deadlines.empty()
                                        ? absl::InfiniteFuture()
                                        : rows->deadlines[call->rows[i]]);
    }
    v1::ComputeRequest& request = call->request;
    request.set_layer(layer);
    request.set_placement_version(plan_.version);
    EncodeTensor(values.data(), n, hidden, options_.activation_dtype,
                 request.mutable_rows());
    for (const std::vector<Routed>& experts : call->routed) {
      request.add_assignments_per_row(static_cast<int32_t>(experts.size()));
      for (const Routed& r : experts) {
        request.add_expert_ids(r.expert);
        request.add_expert_weights(r.weight);
      }
    }
    call->deadline = deadline;
  }
  // Every request is ready before the first goes out: the workers start on
  // the layer at the same time.
  auto pending = std::make_unique<Pending>(
      *this, std::move(rows), out, std::move(calls), std::move(unplaced));
  for (const std::unique_ptr<Call>& call : pending->calls()) {
    Worker& worker = *workers_[call->worker];
    call->started = absl::Now();
    call->context.set_deadline(absl::ToChronoTime(
        std::min(call->deadline, call->started + options_.call_timeout)));
    worker.outstanding_rows.fetch_add(static_cast<int64_t>(call->rows.size()),
                                      std::memory_order_relaxed);
    Call* raw = call.get();
    Pending* waiter = pending.get();
    auto finish = [raw, waiter](grpc::Status status) {
      raw->status = std::move(status);
      raw->round_trip = absl::Now() - raw->started;
      waiter->CallDone();
    };
    if (worker.link) {
      worker.link->Call(
          raw->link_request, call->deadline, &raw->response,
          [finish](absl::Status status) { finish(ToGrpcStatus(status)); });
    } else {
      worker.stub->async()->Compute(&raw->context, &raw->request,
                                    &raw->response, finish);
    }
  }
  return pending;
}

void GrpcExpertDispatch::Collect(Call& call, int layer, float* out,
                                 std::vector<RowFailure>& failures,
                                 std::vector<Routed>& retry) {
  const int64_t hidden = hidden_size_;
  Worker& worker = *workers_[call.worker];
  const int64_t n = static_cast<int64_t>(call.rows.size());
  worker.outstanding_rows.fetch_sub(n, std::memory_order_relaxed);
  absl::Status status;
  std::vector<float> partial;
  if (!call.status.ok()) {
    status = CallError(worker, layer, call.status,
                       absl::FromChrono(call.context.deadline() -
                                        absl::ToChronoTime(call.started)));
  } else {
    status = DecodeTensor(call.response.output(), "output", hidden, &partial);
    if (status.ok() && call.response.output().rows() != n) {
      status = absl::InternalError(
          absl::StrCat("expert worker ", worker.endpoint.id, " returned ",
                       call.response.output().rows(), " rows for ", n));
    }
  }
  // Another holder cannot help a request that is malformed, nor one whose
  // rows ran out of time; a worker that failed otherwise is down.
  const bool past_deadline = absl::IsDeadlineExceeded(status) &&
                             call.deadline <= call.started + call.round_trip;
  const bool failover =
      !status.ok() && !absl::IsInvalidArgument(status) && !past_deadline;
  {
    std::lock_guard<std::mutex> lock(stats_mutex_);
    WorkerCallStats& stats = stats_[call.worker];
    ++stats.calls;
    stats.rows_sent += n;
    stats.total_round_trip_us += absl::ToDoubleMicroseconds(call.round_trip);
    stats.total_worker_wait_us += call.response.queue_wait_us();
    stats.total_worker_compute_us += call.response.compute_us();
    if (!status.ok()) ++stats.failed_calls;
    if (failover) stats.rows_failed_over += n;
  }
  if (failover) {
    // A full queue is busy, not down: it stays in use for other rows.
    if (!absl::IsResourceExhausted(status)) {
      health_->MarkDown(call.worker, status);
    }
    for (std::vector<Routed>& experts : call.routed) {
      for (Routed& r : experts) {
        r.tried.push_back(call.worker);
        r.last_failure = status;
        retry.push_back(std::move(r));
      }
    }
    return;
  }
  if (!status.ok()) {
    for (int32_t row : call.rows) failures.push_back({row, status});
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    float* row = out + call.rows[i] * hidden;
    const float* add = partial.data() + i * hidden;
    for (int64_t k = 0; k < hidden; ++k) row[k] += add[k];
  }
}

bool GrpcExpertDispatch::EveryExpertHeld() const {
  for (const std::vector<int>& holders : plan_.holders) {
    if (std::none_of(holders.begin(), holders.end(),
                     [this](int holder) { return health_->up(holder); })) {
      return false;
    }
  }
  return true;
}

std::vector<WorkerCallStats> GrpcExpertDispatch::Stats() const {
  std::vector<WorkerCallStats> stats;
  {
    std::lock_guard<std::mutex> lock(stats_mutex_);
    stats = stats_;
  }
  for (size_t i = 0; i < workers_.size(); ++i) {
    if (workers_[i]->link) {
      stats[i].links_opened = workers_[i]->link->links_opened();
    }
    stats[i].down = !health_->up(static_cast<int>(i));
    stats[i].recoveries = health_->recoveries(static_cast<int>(i));
  }
  return stats;
}

}  // namespace moe

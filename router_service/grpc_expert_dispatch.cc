#include "router_service/grpc_expert_dispatch.h"

#include <algorithm>
#include <chrono>
#include <iostream>
#include <iterator>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/time/clock.h"
#include "core/util/status_macros.h"
#include "rpc/grpc_status.h"
#include "rpc/tensor_codec.h"

namespace moe {

// One worker's share of a layer: its rows (each once) and their assignments.
struct GrpcExpertDispatch::Call {
  int worker = 0;                           // in the placement
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

namespace {

bool EveryExpertHasALiveHolder(
    const PlacementPlan& plan,
    const std::vector<std::shared_ptr<RemoteWorker>>& workers) {
  for (const std::vector<int>& holders : plan.holders) {
    if (std::none_of(holders.begin(), holders.end(), [&workers](int holder) {
          return workers[holder]->up();
        })) {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<GrpcExpertDispatch>> GrpcExpertDispatch::Connect(
    const PlacementPlan& plan, int hidden_size,
    const std::vector<WorkerEndpoint>& endpoints, const Options& options) {
  auto dispatch = std::unique_ptr<GrpcExpertDispatch>(
      new GrpcExpertDispatch(hidden_size, options));
  GrpcExpertDispatch* raw = dispatch.get();
  dispatch->registry_ = std::make_unique<WorkerRegistry>(
      options, [raw](RemoteWorker& worker) { return raw->Probe(worker); });
  std::set<std::string> listed;
  for (const WorkerEndpoint& endpoint : endpoints) {
    if (plan.WorkerIndex(endpoint.id) < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--workers: \"", endpoint.id, "\" is not a worker of the plan"));
    }
    if (!listed.insert(endpoint.id).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("--workers: \"", endpoint.id, "\" is listed twice"));
    }
  }
  for (const WorkerSpec& spec : plan.workers) {
    auto it = std::find_if(
        endpoints.begin(), endpoints.end(),
        [&spec](const WorkerEndpoint& e) { return e.id == spec.id; });
    if (it == endpoints.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--workers: no address for plan worker \"", spec.id, "\""));
    }
    absl::StatusOr<std::shared_ptr<RemoteWorker>> added =
        dispatch->registry_->Add(*it);
    if (!added.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--workers: ", added.status().message()));
    }
  }
  MOE_ASSIGN_OR_RETURN(std::shared_ptr<const Placement> placement,
                       dispatch->Place(plan));
  std::lock_guard<std::mutex> lock(dispatch->placement_mutex_);
  dispatch->placement_ = std::move(placement);
  return dispatch;
}

absl::StatusOr<std::shared_ptr<const GrpcExpertDispatch::Placement>>
GrpcExpertDispatch::Place(const PlacementPlan& plan) const {
  auto placement = std::make_shared<Placement>();
  placement->plan = plan;
  for (const WorkerSpec& spec : plan.workers) {
    std::shared_ptr<RemoteWorker> worker = registry_->Find(spec.id);
    if (worker == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "plan version ", plan.version, ": the router knows no worker \"",
          spec.id, "\" (add it first)"));
    }
    placement->workers.push_back(std::move(worker));
  }
  return placement;
}

std::shared_ptr<const GrpcExpertDispatch::Placement>
GrpcExpertDispatch::current() const {
  std::lock_guard<std::mutex> lock(placement_mutex_);
  return placement_;
}

std::shared_ptr<const PlacementPlan> GrpcExpertDispatch::plan() const {
  std::shared_ptr<const Placement> placement = current();
  return std::shared_ptr<const PlacementPlan>(placement, &placement->plan);
}

absl::Status GrpcExpertDispatch::CheckWorker(
    const RemoteWorker& worker,
    const v1::WorkerDescription& description) const {
  const std::shared_ptr<const Placement> in_use = current();
  if (in_use == nullptr) {
    return absl::UnavailableError("the router has no plan yet");
  }
  if (description.worker_id() != worker.endpoint.id) {
    return absl::FailedPreconditionError(absl::StrCat(
        worker.name, " says it is \"", description.worker_id(), "\""));
  }
  if (description.hidden_size() != hidden_size_) {
    return absl::FailedPreconditionError(
        absl::StrCat(worker.name, " takes rows of ", description.hidden_size(),
                     "; the router's are ", hidden_size_));
  }
  return CheckShare(worker, description, in_use->plan);
}

absl::Status GrpcExpertDispatch::CheckShare(
    const RemoteWorker& worker, const v1::WorkerDescription& description,
    const PlacementPlan& plan) const {
  const int index = plan.WorkerIndex(worker.endpoint.id);
  if (index < 0) return absl::OkStatus();  // joined, holding no share yet
  // It serves calls of the version it loaded and older ones: one that
  // loaded a plan being applied serves the plan in use too.
  if (description.placement_version() < plan.version) {
    return absl::FailedPreconditionError(absl::StrCat(
        worker.name, " serves plan version ", description.placement_version(),
        "; the router has version ", plan.version));
  }
  const std::vector<std::pair<int, int>> held = ExpertsHeld(description);
  for (const auto& [layer, expert] : plan.ExpertsOf(index)) {
    if (!std::binary_search(held.begin(), held.end(),
                            std::make_pair(layer, expert))) {
      return absl::FailedPreconditionError(
          absl::StrCat(worker.name, " does not hold expert ", expert,
                       " of layer ", layer, " as the plan says"));
    }
  }
  return absl::OkStatus();
}

absl::Status GrpcExpertDispatch::Probe(RemoteWorker& worker) {
  MOE_ASSIGN_OR_RETURN(const v1::WorkerDescription description,
                       registry_->Describe(worker, absl::Seconds(1)));
  const absl::Status checked = CheckWorker(worker, description);
  const std::shared_ptr<const Placement> in_use = current();
  if (checked.ok() || in_use == nullptr ||
      description.worker_id() != worker.endpoint.id ||
      description.hidden_size() != hidden_size_) {
    return checked;
  }
  // It answers with an older version or without its share: a worker
  // restarted from an older plan. Give it its share, unless a change is
  // running (which gives it one, or leaves it down till a later probe).
  std::unique_lock<std::mutex> changes(change_mutex_, std::try_to_lock);
  if (!changes.owns_lock()) return checked;
  MOE_RETURN_IF_ERROR(GiveShare(worker, description, in_use->plan));
  MOE_ASSIGN_OR_RETURN(const v1::WorkerDescription given,
                       registry_->Describe(worker, absl::Seconds(1)));
  return CheckWorker(worker, given);
}

absl::Status GrpcExpertDispatch::GiveShare(
    const RemoteWorker& worker, const v1::WorkerDescription& description,
    const PlacementPlan& plan) {
  const std::vector<std::pair<int, int>> share =
      plan.ExpertsOf(plan.WorkerIndex(worker.endpoint.id));
  const std::vector<std::pair<int, int>> held = ExpertsHeld(description);
  std::vector<std::pair<int, int>> extra, missing;
  std::set_difference(held.begin(), held.end(), share.begin(), share.end(),
                      std::back_inserter(extra));
  std::set_difference(share.begin(), share.end(), held.begin(), held.end(),
                      std::back_inserter(missing));
  std::cerr << "moe-router: " << worker.name << " holds " << held.size()
            << " experts of plan version " << description.placement_version()
            << "; giving it its " << share.size() << " of version "
            << plan.version << " (" << missing.size() << " to load, "
            << extra.size() << " to drop)" << std::endl;
  if (!extra.empty()) {
    MOE_RETURN_IF_ERROR(registry_
                            ->ChangeExperts(worker,
                                            WorkerRegistry::Change::kUnload,
                                            extra, 0, kExpertLoadTimeout)
                            .status());
  }
  return registry_
      ->ChangeExperts(worker, WorkerRegistry::Change::kLoad, missing,
                      plan.version, kExpertLoadTimeout)
      .status();
}

absl::Status GrpcExpertDispatch::AwaitWorkers(absl::Duration timeout) {
  const absl::Time give_up = absl::Now() + timeout;
  const std::shared_ptr<const Placement> placement = current();
  for (const std::shared_ptr<RemoteWorker>& worker : placement->workers) {
    while (true) {
      absl::StatusOr<v1::WorkerDescription> description = registry_->Describe(
          *worker, std::min(absl::Seconds(1), give_up - absl::Now()),
          /*wait_for_ready=*/true);
      if (description.ok()) {
        MOE_RETURN_IF_ERROR(CheckWorker(*worker, *description));
        break;
      }
      if (absl::Now() >= give_up) {
        return absl::UnavailableError(
            absl::StrCat(worker->name, " did not answer within ",
                         absl::FormatDuration(timeout), ": ",
                         description.status().message()));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  return absl::OkStatus();
}

int GrpcExpertDispatch::PickHolder(
    const Placement& placement, int layer, int expert,
    const std::vector<int>& tried,
    const std::vector<int64_t>& rows_this_call) const {
  int best = -1;
  bool best_up = false;
  double best_load = 0;
  for (int holder : placement.plan.Holders(layer, expert)) {
    if (std::find(tried.begin(), tried.end(), holder) != tried.end()) continue;
    const RemoteWorker& worker = *placement.workers[holder];
    const double speed = placement.plan.workers[holder].speed;
    const bool up = worker.up();
    const double load = static_cast<double>(worker.outstanding_rows.load(
                                                std::memory_order_relaxed) +
                                            rows_this_call[holder]) /
                        (speed > 0 ? speed : 1.0);
    if (best < 0 || (up && !best_up) || (up == best_up && load < best_load)) {
      best = holder;
      best_up = up;
      best_load = load;
    }
  }
  return best;
}

absl::Status GrpcExpertDispatch::NoHolderError(const Placement& placement,
                                               int layer,
                                               const Routed& routed) const {
  std::vector<std::string> tried;
  for (int worker : routed.tried) {
    tried.push_back(placement.workers[worker]->endpoint.id);
  }
  return absl::UnavailableError(absl::StrCat(
      ExpertName(layer, routed.expert), " has no live holder; tried ",
      absl::StrJoin(tried, ", "), ": ", routed.last_failure.message()));
}

absl::Status GrpcExpertDispatch::CallError(const RemoteWorker& worker,
                                           int layer,
                                           const grpc::Status& status,
                                           absl::Duration waited) const {
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return absl::DeadlineExceededError(
        absl::StrCat(worker.name, " did not answer layer ", layer, " within ",
                     absl::ToInt64Milliseconds(waited), " ms"));
  }
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat(worker.name, " failed layer ", layer, ": ",
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
      dispatch_.Collect(*call, *rows_, out_, failures, retry);
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
  std::shared_ptr<const Placement> placement = current();
  std::vector<Routed> routed;
  routed.reserve(batch.assignments.size());
  for (const ExpertAssignment& a : batch.assignments) {
    if (a.row < 0 || a.row >= batch.n || a.expert < 0 ||
        a.expert >= placement->plan.num_experts) {
      return std::make_unique<FinishedExperts>(absl::InvalidArgumentError(
          absl::StrCat("layer ", batch.layer, ": assignment (row ", a.row,
                       ", expert ", a.expert, ") is out of range")));
    }
    routed.push_back({a.row, a.expert, a.weight, {}, absl::OkStatus()});
  }
  auto rows = std::make_shared<Rows>(
      Rows{batch.layer, batch.x, batch.n,
           std::vector<absl::Time>(batch.row_deadlines.begin(),
                                   batch.row_deadlines.end()),
           std::move(placement)});
  return Send(std::move(rows), std::move(routed), out);
}

std::unique_ptr<GrpcExpertDispatch::Pending> GrpcExpertDispatch::Send(
    std::shared_ptr<const Rows> rows, std::vector<Routed> routed, float* out) {
  const int64_t hidden = hidden_size_;
  const int layer = rows->layer;
  const Placement& placement = *rows->placement;
  const size_t num_workers = placement.workers.size();
  // Split the assignments by worker, each row once per worker.
  std::vector<std::unique_ptr<Call>> calls(num_workers);
  std::vector<std::vector<int32_t>> local_row(num_workers);
  std::vector<int64_t> rows_this_call(num_workers, 0);
  std::vector<RowFailure> unplaced;
  for (Routed& r : routed) {
    const int w =
        PickHolder(placement, layer, r.expert, r.tried, rows_this_call);
    if (w < 0) {
      unplaced.push_back({r.row, NoHolderError(placement, layer, r)});
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
    request.set_placement_version(placement.plan.version);
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
    RemoteWorker& worker = *placement.workers[call->worker];
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

void GrpcExpertDispatch::Collect(Call& call, const Rows& rows, float* out,
                                 std::vector<RowFailure>& failures,
                                 std::vector<Routed>& retry) {
  const int64_t hidden = hidden_size_;
  const int layer = rows.layer;
  RemoteWorker& worker = *rows.placement->workers[call.worker];
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
      status = absl::InternalError(absl::StrCat(worker.name, " returned ",
                                                call.response.output().rows(),
                                                " rows for ", n));
    }
  }
  // Another holder cannot help a request that is malformed, nor one whose
  // rows ran out of time; a worker that failed otherwise is down.
  const bool past_deadline = absl::IsDeadlineExceeded(status) &&
                             call.deadline <= call.started + call.round_trip;
  const bool failover =
      !status.ok() && !absl::IsInvalidArgument(status) && !past_deadline;
  {
    std::lock_guard<std::mutex> lock(worker.stats_mutex);
    WorkerCallStats& stats = worker.stats;
    ++stats.calls;
    stats.rows_sent += n;
    stats.total_round_trip_us += absl::ToDoubleMicroseconds(call.round_trip);
    stats.total_worker_wait_us += call.response.queue_wait_us();
    stats.total_worker_compute_us += call.response.compute_us();
    if (!status.ok()) ++stats.failed_calls;
    if (failover) stats.rows_failed_over += n;
  }
  if (options_.on_call) {
    options_.on_call(worker.endpoint.id, call.round_trip);
  }
  if (failover) {
    // A full queue is busy, not down: it stays in use for other rows.
    if (!absl::IsResourceExhausted(status)) registry_->MarkDown(worker, status);
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
  const std::shared_ptr<const Placement> placement = current();
  return EveryExpertHasALiveHolder(placement->plan, placement->workers);
}

std::vector<WorkerCallStats> GrpcExpertDispatch::Stats() const {
  std::vector<WorkerCallStats> all;
  for (const std::shared_ptr<RemoteWorker>& worker : registry_->All()) {
    {
      std::lock_guard<std::mutex> lock(worker->stats_mutex);
      all.push_back(worker->stats);
    }
    WorkerCallStats& stats = all.back();
    if (worker->link) stats.links_opened = worker->link->links_opened();
    stats.down = !worker->up();
    stats.recoveries = worker->health->recoveries();
  }
  return all;
}

absl::Status GrpcExpertDispatch::CheckPlan(const PlacementPlan& next) const {
  const std::shared_ptr<const Placement> in_use = current();
  if (next.version < in_use->plan.version) {
    return absl::FailedPreconditionError(
        absl::StrCat("plan version ", next.version,
                     " is older than the router's ", in_use->plan.version));
  }
  MOE_RETURN_IF_ERROR(ValidatePlan(next));
  if (next.num_layers != in_use->plan.num_layers ||
      next.num_experts != in_use->plan.num_experts) {
    return absl::InvalidArgumentError(
        absl::StrCat("plan version ", next.version, " is for ", next.num_layers,
                     " layers x ", next.num_experts, " experts; the model has ",
                     in_use->plan.num_layers, " x ", in_use->plan.num_experts));
  }
  if (next.expert_bytes < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("plan version ", next.version, ": expert_bytes is ",
                     next.expert_bytes, "; it must be positive"));
  }
  return Place(next).status();
}

absl::Status GrpcExpertDispatch::StageNext(const PlacementPlan& next) {
  MOE_RETURN_IF_ERROR(CheckPlan(next));
  MOE_ASSIGN_OR_RETURN(std::shared_ptr<const Placement> staged, Place(next));
  std::lock_guard<std::mutex> lock(placement_mutex_);
  staged_ = std::move(staged);
  return absl::OkStatus();
}

absl::Status GrpcExpertDispatch::StagedPlanHeld() const {
  std::shared_ptr<const Placement> staged;
  {
    std::lock_guard<std::mutex> lock(placement_mutex_);
    staged = staged_;
  }
  if (staged == nullptr) return absl::FailedPreconditionError("no plan staged");
  const PlacementPlan& plan = staged->plan;
  for (int layer = 0; layer < plan.num_layers; ++layer) {
    for (int expert = 0; expert < plan.num_experts; ++expert) {
      const std::vector<int>& holders = plan.Holders(layer, expert);
      std::vector<std::string> down;
      for (int holder : holders) {
        if (staged->workers[holder]->up()) break;
        down.push_back(staged->workers[holder]->endpoint.id);
      }
      if (down.size() == holders.size()) {
        return absl::UnavailableError(absl::StrCat(
            "plan version ", plan.version, ": ", ExpertName(layer, expert),
            " has no live holder (", absl::StrJoin(down, ", "), " down)"));
      }
    }
  }
  return absl::OkStatus();
}

void GrpcExpertDispatch::SwitchToStaged() {
  std::lock_guard<std::mutex> lock(placement_mutex_);
  if (staged_ != nullptr) placement_ = staged_;
}

void GrpcExpertDispatch::DropStaged() {
  std::lock_guard<std::mutex> lock(placement_mutex_);
  staged_ = nullptr;
}

}  // namespace moe

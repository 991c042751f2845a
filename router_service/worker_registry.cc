#include "router_service/worker_registry.h"

#include <arpa/inet.h>

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "link/grpc_message_link.h"
#include "link/nccl_worker_link.h"
#include "rpc/grpc_status.h"

namespace moe {
namespace {

// "a.b.c.d:port".
bool IsIpv4HostPort(const std::string& address) {
  const size_t colon = address.rfind(':');
  int port = 0;
  in_addr ip;
  return colon != std::string::npos &&
         inet_pton(AF_INET, address.substr(0, colon).c_str(), &ip) == 1 &&
         absl::SimpleAtoi(address.substr(colon + 1), &port) && port > 0 &&
         port < 65536;
}

// A new activation link to a worker: over NCCL when asked for and the
// worker computes on a GPU (asked each time: a restarted worker may not),
// else over a gRPC stream.
absl::StatusOr<std::unique_ptr<MessageLink>> OpenActivationLink(
    v1::ExpertWorker::Stub& worker, v1::ExpertLink::Stub& link,
    const ExpertTierOptions& options) {
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
    const auto [id, address] = std::make_pair(parts[0], parts[1]);
    auto known = std::find_if(
        endpoints.begin(), endpoints.end(),
        [&id](const WorkerEndpoint& endpoint) { return endpoint.id == id; });
    if (known == endpoints.end()) {
      endpoints.push_back({id, address});
      continue;
    }
    // Copies of one worker: one channel over all of them, which gRPC's
    // "ipv4:" resolver accepts for IPv4 literals only.
    const bool first_copy = !known->address.starts_with("ipv4:");
    if (!IsIpv4HostPort(address) ||
        (first_copy && !IsIpv4HostPort(known->address))) {
      return absl::InvalidArgumentError(
          absl::StrCat("--workers: worker ", id,
                       " is given several addresses, which must then be IPv4 "
                       "a.b.c.d:port (use one dns:///NAME:PORT for names)"));
    }
    known->address =
        absl::StrCat(first_copy ? "ipv4:" : "", known->address, ",", address);
  }
  return endpoints;
}

std::vector<std::pair<int, int>> ExpertsHeld(
    const v1::WorkerDescription& description) {
  std::vector<std::pair<int, int>> held;
  for (const v1::ExpertId& id : description.experts()) {
    held.emplace_back(id.layer(), id.expert());
  }
  std::sort(held.begin(), held.end());
  return held;
}

absl::StatusOr<ActivationLinkKind> ParseActivationLinkKind(
    const std::string& name) {
  if (name == "rpc") return ActivationLinkKind::kRpc;
  if (name == "stream") return ActivationLinkKind::kStream;
  if (name == "nccl") return ActivationLinkKind::kNccl;
  return absl::InvalidArgumentError(absl::StrCat(
      "--activation-link: \"", name, "\" is not rpc, stream or nccl"));
}

WorkerRegistry::WorkerRegistry(const ExpertTierOptions& options,
                               std::function<absl::Status(RemoteWorker&)> probe)
    : options_(options),
      probe_(std::move(probe)),
      health_(options.probe_interval) {
  channel_args_.SetMaxReceiveMessageSize(256 << 20);
  channel_args_.SetMaxSendMessageSize(256 << 20);
  // A restarted worker is reachable again within a second, not after the
  // default backoff of up to two minutes.
  channel_args_.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  channel_args_.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // A worker whose host vanished without closing its connections (a crash,
  // a partition) is noticed within seconds, also by an idle activation
  // link whose next write would otherwise wait for TCP to give up.
  SetClientKeepalive(options.keepalive_interval, absl::Seconds(5),
                     channel_args_);
  // A worker's address may resolve to several copies holding the same
  // experts (several --workers addresses of one id, or a Kubernetes headless
  // Service as dns:///NAME:PORT): each call goes to the next live one.
  channel_args_.SetLoadBalancingPolicyName("round_robin");
}

absl::StatusOr<std::shared_ptr<RemoteWorker>> WorkerRegistry::Add(
    const WorkerEndpoint& endpoint) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const std::shared_ptr<RemoteWorker>& known : workers_) {
    if (known->endpoint.id == endpoint.id ||
        known->endpoint.address == endpoint.address) {
      return absl::AlreadyExistsError(
          absl::StrCat("worker ", endpoint.id, " at ", endpoint.address,
                       ": the router already has ", known->name));
    }
  }
  auto worker = std::make_shared<RemoteWorker>();
  worker->endpoint = endpoint;
  worker->name =
      absl::StrCat("expert worker ", endpoint.id, " at ", endpoint.address);
  const std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(
      endpoint.address,
      options_.credentials != nullptr ? options_.credentials
                                      : grpc::InsecureChannelCredentials(),
      channel_args_);
  worker->stub = v1::ExpertWorker::NewStub(channel);
  worker->link_stub = v1::ExpertLink::NewStub(channel);
  if (options_.link != ActivationLinkKind::kRpc) {
    RemoteWorker* raw = worker.get();
    const ExpertTierOptions options = options_;
    worker->link = std::make_unique<WorkerLink>(
        [raw, options] {
          return OpenActivationLink(*raw->stub, *raw->link_stub, options);
        },
        options_.call_timeout);
  }
  worker->stats.id = endpoint.id;
  worker->stats.address = endpoint.address;
  // The prober holds the worker weakly: a forgotten one is not kept alive.
  std::weak_ptr<RemoteWorker> weak = worker;
  worker->health = health_.Watch(worker->name, [this, weak] {
    const std::shared_ptr<RemoteWorker> watched = weak.lock();
    return watched ? probe_(*watched) : absl::OkStatus();
  });
  workers_.push_back(worker);
  return worker;
}

std::shared_ptr<RemoteWorker> WorkerRegistry::Remove(const std::string& id) {
  std::shared_ptr<RemoteWorker> removed;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = std::find_if(workers_.begin(), workers_.end(),
                           [&id](const std::shared_ptr<RemoteWorker>& w) {
                             return w->endpoint.id == id;
                           });
    if (it == workers_.end()) return nullptr;
    removed = *it;
    workers_.erase(it);
  }
  health_.Forget(*removed->health);
  return removed;
}

std::shared_ptr<RemoteWorker> WorkerRegistry::Find(
    const std::string& id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const std::shared_ptr<RemoteWorker>& worker : workers_) {
    if (worker->endpoint.id == id) return worker;
  }
  return nullptr;
}

std::vector<std::shared_ptr<RemoteWorker>> WorkerRegistry::All() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return workers_;
}

absl::StatusOr<v1::WorkerDescription> WorkerRegistry::Describe(
    const RemoteWorker& worker, absl::Duration timeout,
    bool wait_for_ready) const {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  context.set_wait_for_ready(wait_for_ready);
  v1::WorkerDescription description;
  const grpc::Status status =
      worker.stub->Describe(&context, v1::DescribeRequest(), &description);
  if (!status.ok()) {
    return absl::Status(
        FromGrpcStatus(status).code(),
        absl::StrCat(worker.name, ": ", status.error_message()));
  }
  return description;
}

absl::StatusOr<v1::WorkerDescription> WorkerRegistry::ChangeExperts(
    const RemoteWorker& worker, Change change,
    const std::vector<std::pair<int, int>>& experts, int version,
    absl::Duration timeout) const {
  v1::ExpertSet set;
  for (const auto& [layer, expert] : experts) {
    v1::ExpertId* id = set.add_experts();
    id->set_layer(layer);
    id->set_expert(expert);
  }
  set.set_placement_version(version);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  v1::WorkerDescription description;
  const grpc::Status status =
      change == Change::kLoad
          ? worker.stub->LoadExperts(&context, set, &description)
          : worker.stub->UnloadExperts(&context, set, &description);
  if (!status.ok()) {
    return absl::Status(
        FromGrpcStatus(status).code(),
        absl::StrCat(worker.name, " could not ",
                     change == Change::kLoad ? "load " : "unload ",
                     experts.size(), " experts: ", status.error_message()));
  }
  return description;
}

}  // namespace moe

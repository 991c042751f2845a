// moe-plan: places a model's experts on workers within their memory, writes
// the plan and prints how evenly it spreads the load, and on request the
// decode throughput it projects on a set of GPUs.
#include <filesystem>
#include <iostream>
#include <optional>

#include "absl/flags/flag.h"
#include "absl/strings/str_join.h"
#include "core/model/model_config.h"
#include "core/placement/placement_planner.h"
#include "core/util/command_line.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "tools/moe_plan/gpu_spec.h"
#include "tools/moe_plan/kustomize_emitter.h"
#include "tools/moe_plan/placement_tool.h"
#include "tools/moe_plan/projection_report.h"
#include "tools/moe_plan/throughput_projection.h"

ABSL_FLAG(std::string, model, "", "checkpoint directory; its config.json");
ABSL_FLAG(std::string, config, "", "a config.json file (instead of --model)");
ABSL_FLAG(std::string, workers, "",
          "workers as ID=MEMORY[@SPEED],... e.g. w0=24GiB,w1=12GiB@1.5; "
          "MEMORY in bytes, KB/MB/GB/TB or KiB/MiB/GiB/TiB; SPEED relative, "
          "default 1");
ABSL_FLAG(int, copies, 1,
          "copies of every expert, each on a distinct worker (2: any one "
          "worker can fail)");
ABSL_FLAG(int, replicas, 0,
          "extra copies of the hottest experts beyond --copies, where memory "
          "allows");
ABSL_FLAG(std::string, load, "",
          "JSON [layers][experts] of routed token counts; default uniform");
ABSL_FLAG(int, version, 1, "version number of the plan");
ABSL_FLAG(std::string, keep, "",
          "a plan to start from: experts stay on the workers that hold them "
          "there while each layer's slowest worker stays within 5% of a plan "
          "from scratch, so applying the new plan moves few experts");
ABSL_FLAG(std::string, out, "", "write the plan (JSON) to this file");
ABSL_FLAG(std::string, emit_kustomize, "",
          "also write the plan's Kubernetes workers (a kustomize Component "
          "for the overlays of deploy/k8s) into this folder");
ABSL_FLAG(std::string, check, "",
          "validate this plan file and print its table instead of planning");
ABSL_FLAG(bool, project, false,
          "after the plan, print its projected decode throughput per batch "
          "size");
ABSL_FLAG(std::string, gpu, "rtx4090",
          "every worker's GPU for --project: rtx4090, h100 or h200, then "
          "optional KEY=VALUE overrides: memory, bandwidth, link (sizes, "
          "bandwidths per second), fp8, bf16 (dense TFLOP/s); e.g. "
          "rtx4090,link=12GB");
ABSL_FLAG(std::string, router_worker, "",
          "for --project: the worker whose GPU also hosts the router "
          "(attention, K/V cache, LM head); default the first");
ABSL_FLAG(int, context, moe::ProjectionInput().context,
          "for --project: tokens each sequence attends to");
ABSL_FLAG(std::string, batches,
          absl::StrJoin(moe::ProjectionInput().batches, ","),
          "for --project: the batch sizes (sequences per decode step)");
ABSL_FLAG(double, layer_overhead_us,
          moe::ProjectionInput().layer_overhead_s * 1e6,
          "for --project: fixed time per layer (launches, synchronization)");
ABSL_FLAG(double, bandwidth_efficiency,
          moe::ProjectionInput().bandwidth_efficiency,
          "for --project: achieved over peak memory bandwidth");
ABSL_FLAG(double, compute_efficiency, moe::ProjectionInput().compute_efficiency,
          "for --project: achieved over peak tensor FLOP/s");

namespace {

namespace fs = std::filesystem;

struct NamedConfig {
  moe::ModelConfig config;
  // The name the plan gives the model: the checkpoint directory's name, or
  // the config file's stem (its directory's name for a config.json).
  std::string name;
};

absl::StatusOr<NamedConfig> LoadConfig() {
  const std::string dir = absl::GetFlag(FLAGS_model);
  const std::string file = absl::GetFlag(FLAGS_config);
  if (dir.empty() == file.empty()) {
    return absl::InvalidArgumentError("need one of --model or --config");
  }
  if (!dir.empty()) {
    MOE_ASSIGN_OR_RETURN(moe::ModelConfig config, moe::LoadModelConfig(dir));
    fs::path path = fs::absolute(dir).lexically_normal();
    if (!path.has_filename()) path = path.parent_path();  // "models/x/"
    return NamedConfig{config, path.filename().string()};
  }
  MOE_ASSIGN_OR_RETURN(const nlohmann::json json, moe::ReadJsonFile(file));
  MOE_ASSIGN_OR_RETURN(moe::ModelConfig config,
                       moe::ParseModelConfig(json, file));
  const fs::path path = fs::absolute(file).lexically_normal();
  const std::string name = path.filename() == "config.json"
                               ? path.parent_path().filename().string()
                               : path.stem().string();
  return NamedConfig{config, name};
}

// The projection's settings from the flags, one GPU per worker of the plan.
absl::StatusOr<moe::ProjectionInput> ProjectionSettings(int num_workers) {
  moe::ProjectionInput input;
  MOE_ASSIGN_OR_RETURN(const moe::GpuSpec gpu,
                       moe::ParseGpuSpec(absl::GetFlag(FLAGS_gpu)));
  input.gpus.assign(num_workers, gpu);
  input.router_worker = absl::GetFlag(FLAGS_router_worker);
  input.context = absl::GetFlag(FLAGS_context);
  MOE_ASSIGN_OR_RETURN(input.batches,
                       moe::ParseBatchSizes(absl::GetFlag(FLAGS_batches)));
  input.layer_overhead_s = absl::GetFlag(FLAGS_layer_overhead_us) * 1e-6;
  input.bandwidth_efficiency = absl::GetFlag(FLAGS_bandwidth_efficiency);
  input.compute_efficiency = absl::GetFlag(FLAGS_compute_efficiency);
  return input;
}

absl::Status Project(const moe::ModelConfig& config,
                     const moe::PlacementPlan& plan,
                     const std::vector<double>& load) {
  MOE_ASSIGN_OR_RETURN(
      moe::ProjectionInput input,
      ProjectionSettings(static_cast<int>(plan.workers.size())));
  input.config = config;
  input.plan = plan;
  input.load = load;
  MOE_ASSIGN_OR_RETURN(const moe::Projection projection,
                       moe::ProjectThroughput(input));
  std::cout << "\n" << moe::FormatProjection(input, projection);
  return absl::OkStatus();
}

absl::Status EmitKustomizeOnRequest(const moe::PlacementPlan& plan) {
  const std::string dir = absl::GetFlag(FLAGS_emit_kustomize);
  if (dir.empty()) return absl::OkStatus();
  MOE_RETURN_IF_ERROR(moe::EmitKustomize(plan, dir));
  std::cout << "Kubernetes workers of plan version " << plan.version
            << " written to " << dir << "\n";
  return absl::OkStatus();
}

absl::Status Plan() {
  MOE_ASSIGN_OR_RETURN(const NamedConfig named, LoadConfig());
  const moe::ModelConfig& config = named.config;
  moe::PlannerInput input;
  input.model = named.name;
  input.version = absl::GetFlag(FLAGS_version);
  input.num_layers = config.num_layers;
  input.num_experts = config.num_experts;
  input.expert_bytes = moe::ExpertWeightBytes(config);
  MOE_ASSIGN_OR_RETURN(input.workers,
                       moe::ParseWorkerSpecs(absl::GetFlag(FLAGS_workers)));
  input.copies = absl::GetFlag(FLAGS_copies);
  input.replica_budget = absl::GetFlag(FLAGS_replicas);
  std::optional<moe::PlacementPlan> kept;
  if (!absl::GetFlag(FLAGS_keep).empty()) {
    MOE_ASSIGN_OR_RETURN(kept, moe::ReadPlan(absl::GetFlag(FLAGS_keep)));
    MOE_RETURN_IF_ERROR(
        moe::CheckPlanMatchesModel(*kept, input.num_layers, input.num_experts));
    input.current_holders = moe::CurrentHolders(*kept, input.workers);
  }
  if (!absl::GetFlag(FLAGS_load).empty()) {
    MOE_ASSIGN_OR_RETURN(
        input.load, moe::ReadLoadMatrix(absl::GetFlag(FLAGS_load),
                                        input.num_layers, input.num_experts));
  }
  MOE_ASSIGN_OR_RETURN(const moe::PlacementPlan plan,
                       moe::PlanPlacement(input));
  std::cout << moe::FormatPlacementReport(plan, input.load);
  if (kept.has_value()) {
    std::cout << "from " << absl::GetFlag(FLAGS_keep) << " (version "
              << kept->version << "), applying it loads "
              << moe::CopiesToLoad(*kept, plan) << " expert copies\n";
  }
  const std::string out = absl::GetFlag(FLAGS_out);
  if (!out.empty()) {
    MOE_RETURN_IF_ERROR(moe::WritePlan(plan, out));
    std::cout << "plan version " << plan.version << " written to " << out
              << "\n";
  }
  MOE_RETURN_IF_ERROR(EmitKustomizeOnRequest(plan));
  if (!absl::GetFlag(FLAGS_project)) return absl::OkStatus();
  return Project(config, plan, input.load);
}

absl::Status Check() {
  if (!absl::GetFlag(FLAGS_model).empty() ||
      !absl::GetFlag(FLAGS_config).empty() ||
      !absl::GetFlag(FLAGS_workers).empty() ||
      !absl::GetFlag(FLAGS_out).empty() || absl::GetFlag(FLAGS_replicas) != 0 ||
      absl::GetFlag(FLAGS_copies) != 1 || absl::GetFlag(FLAGS_project)) {
    return absl::InvalidArgumentError(
        "--check reads a plan; it takes only --load and --emit-kustomize "
        "besides");
  }
  MOE_ASSIGN_OR_RETURN(const moe::PlacementPlan plan,
                       moe::ReadPlan(absl::GetFlag(FLAGS_check)));
  std::vector<double> load;
  if (!absl::GetFlag(FLAGS_load).empty()) {
    MOE_ASSIGN_OR_RETURN(
        load, moe::ReadLoadMatrix(absl::GetFlag(FLAGS_load), plan.num_layers,
                                  plan.num_experts));
  }
  std::cout << moe::FormatPlacementReport(plan, load);
  return EmitKustomizeOnRequest(plan);
}

}  // namespace

int main(int argc, char** argv) {
  moe::ParseCommandLine(
      argc, argv,
      "moe-plan --model DIR | --config FILE --workers ID=MEMORY[@SPEED],... "
      "[--copies N --replicas N --load FILE --keep PLAN --version N --out "
      "FILE --emit-kustomize DIR]\n"
      "  [--project --gpu rtx4090|h100|h200[,KEY=VALUE...] --router-worker ID "
      "--context N --batches 1,8,...]\n"
      "moe-plan --check PLAN [--load FILE --emit-kustomize DIR]");
  const absl::Status status =
      absl::GetFlag(FLAGS_check).empty() ? Plan() : Check();
  if (!status.ok()) {
    std::cerr << "moe-plan: " << status.message() << "\n";
    return 1;
  }
  return 0;
}

#include "engine/gpu_model_runner.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/cuda/cuda_check.h"
#include "core/cuda/device_buffer.h"
#include "core/cuda/device_info.h"
#include "core/cuda/lt_matmul.h"
#include "core/util/status_macros.h"
#include "engine/cuda/convert.h"
#include "engine/cuda/embedding.h"
#include "engine/cuda/moe_gating.h"
#include "engine/cuda/residual.h"
#include "engine/cuda/rms_norm.h"
#include "engine/cuda/router_layer.h"

namespace moe {
namespace {

using cuda::DeviceBuffer;

absl::Status CudaStatus(cudaError_t status, const char* what) {
  if (status == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(cuda::CudaErrorText(status, what));
}

absl::Status Launched(bool ok, const std::string& error) {
  return ok ? absl::OkStatus() : absl::InternalError(error);
}

// Grows `buffer` to `bytes`: RESOURCE_EXHAUSTED naming the amount when the
// device is out of memory (a pass too big for what the weights and cache
// leave), INTERNAL for any other failure.
absl::Status Reserve(DeviceBuffer& buffer, size_t bytes, const char* what) {
  const cudaError_t status = buffer.Reserve(bytes);
  if (status == cudaErrorMemoryAllocation) {
    return absl::ResourceExhaustedError(
        absl::StrCat(what, ": out of device memory for ", bytes, " bytes"));
  }
  return CudaStatus(status, what);
}

std::vector<__nv_bfloat16> ToBf16(const std::vector<float>& values) {
  std::vector<__nv_bfloat16> out(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    out[i] = __float2bfloat16(values[i]);
  }
  return out;
}

// A weight matrix dequantized (FP8 with its scales, BF16, F32) to BF16.
std::vector<__nv_bfloat16> ToBf16(const LinearWeight& weight) {
  std::vector<__nv_bfloat16> out(weight.rows * weight.cols);
  std::vector<float> row(weight.cols);
  for (int64_t r = 0; r < weight.rows; ++r) {
    weight.DecodeRow(r, row.data());
    for (int64_t c = 0; c < weight.cols; ++c) {
      out[r * weight.cols + c] = __float2bfloat16(row[c]);
    }
  }
  return out;
}

// Copies host arrays to the device (growing the buffer) on the default
// stream, which orders them before the kernels that read them.
template <typename T>
absl::StatusOr<T*> CopyToDevice(const std::vector<T>& host,
                                DeviceBuffer& buffer, const char* what) {
  MOE_RETURN_IF_ERROR(
      Reserve(buffer, std::max<size_t>(1, host.size() * sizeof(T)), what));
  MOE_RETURN_IF_ERROR(
      CudaStatus(cudaMemcpy(buffer.get(), host.data(), host.size() * sizeof(T),
                            cudaMemcpyHostToDevice),
                 what));
  return buffer.get<T>();
}

template <typename T>
absl::Status CopyToHost(const T* device, size_t count, std::vector<T>& host,
                        const char* what) {
  host.resize(count);
  return CudaStatus(cudaMemcpy(host.data(), device, count * sizeof(T),
                               cudaMemcpyDeviceToHost),
                    what);
}

class GpuModelRunner : public ModelRunner {
 public:
  GpuModelRunner(const ModelWeights& weights, ExpertDispatch& experts,
                 int device, const ModelRunnerOptions& options)
      // The keys and values are in the device pools Init makes; the base's
      // pool only hands out their block ids.
      : ModelRunner(weights.config(), options, KvStorage::kAccountingOnlyBf16),
        weights_(weights),
        experts_(experts),
        device_(device),
        batches_(std::max(1, options.micro_batches)) {}

  // Its device memory is freed on its device.
  ~GpuModelRunner() override { cudaSetDevice(device_); }

  // Checks the memory, then copies the weights and makes the KV pools.
  absl::Status Init();

  std::vector<absl::StatusOr<std::vector<float>>> ForwardBatch(
      std::span<const SequenceStep> steps) override;

 private:
  // Some of the steps of a pass, moving through the layers together; with
  // two, each one's attention runs while the other's rows are at the
  // experts. Its buffers stay for the next pass.
  struct MicroBatch {
    std::vector<size_t> members;       // indices into the caller's steps
    std::vector<absl::Status> failed;  // per member: its rows' first failure
    std::vector<size_t> first_row;     // per member
    // Per row: its token, its member (the sequence in the paged batch) and
    // position; per member: where its block table starts; the tables.
    std::vector<int32_t> tokens, sequences, positions, offsets, tables;
    std::vector<absl::Time> deadlines;
    // The layer in flight: routed rows, their experts, where results land.
    std::vector<float> expert_input, expert_out, expert_weights;
    std::vector<int32_t> expert_ids;
    std::vector<ExpertAssignment> assignments;
    std::unique_ptr<PendingExperts> pending;
    // On the device.
    cuda::PagedBatch batch;
    std::unique_ptr<cuda::RouterLayer> layer;
    int64_t layer_rows = 0;
    DeviceBuffer tokens_d, sequences_d, positions_d, offsets_d, tables_d, x,
        routed_input, routed_ids, routed_weights, routed_out, normed, wanted_d,
        logit_input, logit_input_bf16, logits;

    int64_t rows() const { return static_cast<int64_t>(tokens.size()); }
  };
  // A micro-batch's own device buffer that grows with its rows, and its
  // bytes per row.
  struct RowBuffer {
    DeviceBuffer MicroBatch::*buffer;
    int64_t row_bytes;
    const char* what;
  };
  // Grown by Prepare for the pass's rows, and by Logits for the rows whose
  // logits are wanted; Init budgets both for the most rows a pass runs.
  // (The index arrays, a few bytes per row and block, are not listed.)
  std::vector<RowBuffer> PassBuffers() const;
  std::vector<RowBuffer> LogitBuffers() const;

  template <typename T>
  absl::StatusOr<const T*> Keep(const std::vector<T>& host, const char* what) {
    storage_.emplace_back();
    return CopyToDevice(host, storage_.back(), what);
  }
  // Scratch for `rows` rows in `batch`'s RouterLayer.
  absl::Status EnsureLayer(MicroBatch& batch, int64_t rows);
  // Gathers the members' rows and block tables, copies them to the device
  // and embeds the tokens.
  absl::Status Prepare(std::span<const SequenceStep> steps, MicroBatch& batch);
  // Attention and gating of `layer` on the device, then the routed rows off
  // to the experts (without waiting for them).
  absl::Status AttendAndSend(int layer, MicroBatch& batch);
  // Waits for the layer's experts and adds their sums to the hidden rows;
  // rows whose experts failed fail their steps.
  absl::Status AddExperts(MicroBatch& batch);
  // The final norm and the LM head over the rows whose logits are wanted,
  // into each successful member's result.
  absl::Status Logits(std::span<const SequenceStep> steps, MicroBatch& batch,
                      std::vector<absl::StatusOr<std::vector<float>>>& results);
  // The whole pass over `batches` (none of their experts still in flight
  // when it returns). An error fails every step.
  absl::Status Run(std::span<const SequenceStep> steps,
                   std::span<MicroBatch> batches,
                   std::vector<absl::StatusOr<std::vector<float>>>& results);

  const ModelWeights& weights_;
  ExpertDispatch& experts_;
  const int device_;

  std::vector<DeviceBuffer> storage_;  // weights and KV pools
  std::vector<cuda::RouterLayerWeights> layer_weights_;
  std::vector<__nv_bfloat16*> key_pools_, value_pools_;
  const __nv_bfloat16* embed_tokens_ = nullptr;
  const __nv_bfloat16* final_norm_ = nullptr;
  const __nv_bfloat16* lm_head_ = nullptr;
  cuda::PagedKvLayout layout_;
  cuda::RouterLayerShape shape_;
  std::unique_ptr<cuda::LtMatmul> lm_matmul_;
  std::vector<MicroBatch> batches_;
};

std::vector<GpuModelRunner::RowBuffer> GpuModelRunner::PassBuffers() const {
  const ModelConfig& c = config();
  const int64_t hidden = c.hidden_size;
  return {{&MicroBatch::x, hidden * 4, "hidden rows"},
          {&MicroBatch::routed_input, hidden * 4, "hidden rows"},
          {&MicroBatch::routed_out, hidden * 4, "hidden rows"},
          {&MicroBatch::routed_ids, int64_t{c.top_k} * 4, "expert ids"},
          {&MicroBatch::routed_weights, int64_t{c.top_k} * 4, "expert weights"},
          {&MicroBatch::normed, hidden * 2, "final norm"}};
}

std::vector<GpuModelRunner::RowBuffer> GpuModelRunner::LogitBuffers() const {
  const ModelConfig& c = config();
  const int64_t hidden = c.hidden_size;
  return {{&MicroBatch::logit_input, hidden * 4, "logit rows"},
          {&MicroBatch::logit_input_bf16, hidden * 2, "logit rows"},
          {&MicroBatch::logits, int64_t{c.vocab_size} * 4, "logits"}};
}

absl::Status GpuModelRunner::Init() {
  const ModelConfig& c = config();
  MOE_RETURN_IF_ERROR(CudaStatus(cudaSetDevice(device_), "cudaSetDevice"));
  shape_.hidden = c.hidden_size;
  shape_.heads = c.num_heads;
  shape_.kv_heads = c.num_kv_heads;
  shape_.head_dim = c.head_dim;
  shape_.sliding_window = c.sliding_window;
  shape_.rope_theta = c.rope_theta;
  shape_.rms_norm_eps = static_cast<float>(c.rms_norm_eps);
  shape_.gating = {c.num_experts, c.top_k, c.use_logits_norm,
                   static_cast<float>(c.gate_norm_std)};
  // A model shape the layer cannot run is refused now, before any weight is
  // copied, not at a request.
  MOE_RETURN_IF_ERROR(EnsureLayer(batches_[0], 1));
  std::string error;
  lm_matmul_ = cuda::LtMatmul::Create(&error);
  if (lm_matmul_ == nullptr) return absl::InternalError(error);
  // Everything the device will hold, checked before any of it is copied.
  const int64_t hidden = c.hidden_size;
  const int64_t q_width = int64_t{c.num_heads} * c.head_dim;
  const int64_t kv_width = int64_t{c.num_kv_heads} * c.head_dim;
  const int64_t layer_elements = 2 * hidden + 2 * q_width * hidden +
                                 2 * kv_width * hidden +
                                 int64_t{c.num_experts} * hidden;
  // One key and one value pool per layer, BF16: kv_pool() counted its
  // blocks at that size, so together they take at most the KV budget.
  layout_ = {static_cast<int>(kv_pool().total_blocks()), kv_pool().block_size(),
             c.num_kv_heads, c.head_dim};
  const int64_t pool_bytes = layout_.PoolElements() * kv_pool().element_bytes();
  const int64_t weight_bytes =
      2 * (c.num_layers * layer_elements + 2 * int64_t{c.vocab_size} * hidden +
           hidden);
  const int64_t kv_bytes = int64_t{c.num_layers} * 2 * pool_bytes;
  // The scratch every micro-batch grows to over passes of up to
  // max_step_tokens rows: its RouterLayer (with its cuBLASLt workspace) and
  // its own buffers, as if every row wanted logits. Batch 0's one-row layer
  // and the LM head's workspace, made above, are already out of the free
  // bytes (growing, a layer frees its old scratch first).
  const int rows = std::max(1, options().max_step_tokens);
  int64_t row_bytes = 0;
  for (const auto& buffers : {PassBuffers(), LogitBuffers()}) {
    for (const RowBuffer& b : buffers) row_bytes += b.row_bytes;
  }
  const int64_t scratch_bytes =
      static_cast<int64_t>(batches_.size()) *
          (static_cast<int64_t>(cuda::RouterLayer::DeviceBytes(shape_, rows)) +
           rows * row_bytes) -
      static_cast<int64_t>(cuda::RouterLayer::DeviceBytes(shape_, 1));
  cuda::DeviceMemory memory;
  if (!cuda::QueryDeviceMemory(device_, &memory, &error)) {
    return absl::InternalError(error);
  }
  if (static_cast<size_t>(weight_bytes + kv_bytes + scratch_bytes) >
      memory.free_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "--router-device ", device_, ": the dense weights (", weight_bytes,
        " bytes as BF16), the KV cache (", kv_bytes, " bytes) and the scratch",
        " for ", rows, " rows per pass (", scratch_bytes,
        " bytes) need more than the ", memory.free_bytes, " bytes free"));
  }

  MOE_ASSIGN_OR_RETURN(embed_tokens_,
                       Keep(ToBf16(weights_.embed_tokens()), "embeddings"));
  MOE_ASSIGN_OR_RETURN(final_norm_,
                       Keep(ToBf16(weights_.final_norm()), "final norm"));
  MOE_ASSIGN_OR_RETURN(lm_head_, Keep(ToBf16(weights_.lm_head()), "LM head"));
  for (const LayerWeights& layer : weights_.layers()) {
    cuda::RouterLayerWeights w;
    MOE_ASSIGN_OR_RETURN(w.input_norm,
                         Keep(ToBf16(layer.input_norm), "input norm"));
    MOE_ASSIGN_OR_RETURN(w.q, Keep(ToBf16(layer.q_proj), "q_proj"));
    MOE_ASSIGN_OR_RETURN(w.k, Keep(ToBf16(layer.k_proj), "k_proj"));
    MOE_ASSIGN_OR_RETURN(w.v, Keep(ToBf16(layer.v_proj), "v_proj"));
    MOE_ASSIGN_OR_RETURN(w.o, Keep(ToBf16(layer.o_proj), "o_proj"));
    MOE_ASSIGN_OR_RETURN(
        w.post_attention_norm,
        Keep(ToBf16(layer.post_attention_norm), "post-attention norm"));
    MOE_ASSIGN_OR_RETURN(w.gate, Keep(ToBf16(layer.gate), "gate"));
    layer_weights_.push_back(w);
    for (auto* pools : {&key_pools_, &value_pools_}) {
      storage_.emplace_back();
      MOE_RETURN_IF_ERROR(Reserve(storage_.back(), pool_bytes, "KV pool"));
      pools->push_back(storage_.back().get<__nv_bfloat16>());
    }
  }
  return absl::OkStatus();
}

absl::Status GpuModelRunner::EnsureLayer(MicroBatch& batch, int64_t rows) {
  if (batch.layer != nullptr && rows <= batch.layer_rows) {
    return absl::OkStatus();
  }
  std::string error;
  cudaError_t cuda_status = cudaSuccess;
  // The old scratch goes first: the new one needs no room beside it.
  batch.layer.reset();
  batch.layer = cuda::RouterLayer::Create(shape_, static_cast<int>(rows),
                                          &error, &cuda_status);
  if (batch.layer == nullptr) {
    if (cuda_status == cudaErrorMemoryAllocation) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "--router-device ", device_, ": out of device memory for the ",
          cuda::RouterLayer::DeviceBytes(shape_, static_cast<int>(rows)),
          " bytes of scratch of ", rows, " rows: ", error));
    }
    if (cuda_status != cudaSuccess) {
      return absl::InternalError(
          absl::StrCat("--router-device ", device_, ": ", error));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("--router-device ", device_, ": ", error));
  }
  batch.layer_rows = rows;
  return absl::OkStatus();
}

std::vector<absl::StatusOr<std::vector<float>>> GpuModelRunner::ForwardBatch(
    std::span<const SequenceStep> steps) {
  std::vector<absl::StatusOr<std::vector<float>>> results(steps.size());
  const std::vector<std::vector<size_t>> groups = CheckAndSplit(steps, results);
  if (groups.empty()) return results;
  ++mutable_counters().forward_passes;
  if (groups.size() > 1) ++mutable_counters().split_passes;
  for (size_t b = 0; b < groups.size(); ++b) batches_[b].members = groups[b];
  const std::span<MicroBatch> batches(batches_.data(), groups.size());
  const absl::Status status = Run(steps, batches, results);
  for (MicroBatch& batch : batches) {
    for (size_t m = 0; m < batch.members.size(); ++m) {
      const SequenceStep& step = steps[batch.members[m]];
      if (!status.ok() || !batch.failed[m].ok()) {
        results[batch.members[m]] = status.ok() ? batch.failed[m] : status;
        continue;
      }
      step.cache->SetLength(step.cache->length() +
                            static_cast<int64_t>(step.tokens.size()));
    }
  }
  return results;
}

absl::Status GpuModelRunner::Run(
    std::span<const SequenceStep> steps, std::span<MicroBatch> batches,
    std::vector<absl::StatusOr<std::vector<float>>>& results) {
  // However the pass ends, no expert call still writes into a batch.
  struct AwaitExperts {
    std::span<MicroBatch> batches;
    ~AwaitExperts() {
      for (MicroBatch& batch : batches) batch.pending.reset();
    }
  } await_experts{batches};
  MOE_RETURN_IF_ERROR(CudaStatus(cudaSetDevice(device_), "cudaSetDevice"));
  for (MicroBatch& batch : batches) {
    MOE_RETURN_IF_ERROR(Prepare(steps, batch));
  }
  // The micro-batches take turns layer by layer, as on the CPU.
  const int layers = config().num_layers;
  for (MicroBatch& batch : batches) {
    MOE_RETURN_IF_ERROR(AttendAndSend(0, batch));
  }
  for (int layer = 0; layer < layers; ++layer) {
    for (MicroBatch& batch : batches) {
      MOE_RETURN_IF_ERROR(AddExperts(batch));
      if (layer + 1 < layers) {
        MOE_RETURN_IF_ERROR(AttendAndSend(layer + 1, batch));
      }
    }
  }
  for (MicroBatch& batch : batches) {
    MOE_RETURN_IF_ERROR(Logits(steps, batch, results));
  }
  return absl::OkStatus();
}

absl::Status GpuModelRunner::Prepare(std::span<const SequenceStep> steps,
                                     MicroBatch& batch) {
  const ModelConfig& c = config();
  for (auto* v : {&batch.tokens, &batch.sequences, &batch.positions,
                  &batch.offsets, &batch.tables}) {
    v->clear();
  }
  batch.deadlines.clear();
  batch.first_row.clear();
  batch.failed.assign(batch.members.size(), absl::OkStatus());
  for (size_t m = 0; m < batch.members.size(); ++m) {
    const SequenceStep& step = steps[batch.members[m]];
    batch.first_row.push_back(batch.tokens.size());
    batch.offsets.push_back(static_cast<int32_t>(batch.tables.size()));
    const std::vector<int32_t>& blocks = step.cache->blocks();
    batch.tables.insert(batch.tables.end(), blocks.begin(), blocks.end());
    for (size_t i = 0; i < step.tokens.size(); ++i) {
      batch.tokens.push_back(step.tokens[i]);
      batch.sequences.push_back(static_cast<int32_t>(m));
      batch.positions.push_back(
          static_cast<int32_t>(step.cache->length() + int64_t(i)));
      batch.deadlines.push_back(step.deadline);
    }
  }
  const int64_t n = batch.rows();
  MOE_RETURN_IF_ERROR(EnsureLayer(batch, n));
  batch.batch.rows = static_cast<int>(n);
  MOE_ASSIGN_OR_RETURN(
      batch.batch.row_sequences,
      CopyToDevice(batch.sequences, batch.sequences_d, "rows"));
  MOE_ASSIGN_OR_RETURN(
      batch.batch.row_positions,
      CopyToDevice(batch.positions, batch.positions_d, "rows"));
  MOE_ASSIGN_OR_RETURN(
      batch.batch.block_table_offsets,
      CopyToDevice(batch.offsets, batch.offsets_d, "block tables"));
  MOE_ASSIGN_OR_RETURN(
      batch.batch.block_tables,
      CopyToDevice(batch.tables, batch.tables_d, "block tables"));
  MOE_ASSIGN_OR_RETURN(const int32_t* tokens,
                       CopyToDevice(batch.tokens, batch.tokens_d, "tokens"));
  for (const RowBuffer& b : PassBuffers()) {
    MOE_RETURN_IF_ERROR(Reserve(batch.*b.buffer, n * b.row_bytes, b.what));
  }
  return CudaStatus(
      cuda::EmbedTokens(embed_tokens_, c.hidden_size, tokens,
                        static_cast<int>(n), batch.x.get<float>(), nullptr),
      "embeddings");
}

absl::Status GpuModelRunner::AttendAndSend(int layer, MicroBatch& batch) {
  const ModelConfig& c = config();
  const int64_t n = batch.rows();
  const int64_t hidden = c.hidden_size;
  // The expert dispatch may have made another GPU current (an NCCL link on
  // --nccl-device).
  MOE_RETURN_IF_ERROR(CudaStatus(cudaSetDevice(device_), "cudaSetDevice"));
  const auto start = std::chrono::steady_clock::now();
  std::string error;
  MOE_RETURN_IF_ERROR(Launched(
      batch.layer->AttendAndRoute(
          layer_weights_[layer], batch.x.get<float>(), batch.batch, layout_,
          key_pools_[layer], value_pools_[layer],
          {batch.routed_input.get<float>(), batch.routed_ids.get<int32_t>(),
           batch.routed_weights.get<float>()},
          nullptr, &error),
      error));
  std::vector<int32_t>& ids = batch.expert_ids;
  std::vector<float>& weights = batch.expert_weights;
  // Synchronous copies on the legacy stream: they wait for the layer, and
  // only for it (a device-wide wait would also wait for NCCL kernels that
  // wait for their peer on other streams).
  MOE_RETURN_IF_ERROR(CopyToHost(batch.routed_input.get<float>(), n * hidden,
                                 batch.expert_input, "expert rows"));
  // The experts' input, formed here once: the gate saw it unscaled.
  if (const float scale = ExpertInputScale(c); scale != 1.0f) {
    for (float& value : batch.expert_input) value *= scale;
  }
  MOE_RETURN_IF_ERROR(CopyToHost(batch.routed_ids.get<int32_t>(), n * c.top_k,
                                 ids, "expert ids"));
  MOE_RETURN_IF_ERROR(CopyToHost(batch.routed_weights.get<float>(), n * c.top_k,
                                 weights, "expert weights"));
  const double us = MicrosSince(start);
  mutable_counters().attention_us += us;
  const bool overlapped = std::any_of(
      batches_.begin(), batches_.end(),
      [](const MicroBatch& other) { return other.pending != nullptr; });
  if (overlapped) mutable_counters().overlapped_attention_us += us;

  // A row with a non-finite gate logit has no selection (cuda::kNoExpert).
  // It fails the row's step only, before any of that step's rows is sent,
  // naming the layer where the activations went bad.
  for (int64_t r = 0; r < n; ++r) {
    absl::Status& member = batch.failed[batch.sequences[r]];
    if (!member.ok()) continue;
    const int32_t expert = ids[r * c.top_k];
    if (expert == cuda::kNoExpert) {
      member = absl::InternalError(
          absl::StrCat("layer ", layer,
                       ": a non-finite gate logit; the checkpoint's "
                       "weights may be corrupt"));
      continue;
    }
    for (int j = 0; j < c.top_k; ++j) {
      const int32_t chosen = ids[r * c.top_k + j];
      if (chosen < 0 || chosen >= c.num_experts) {
        member = absl::InternalError(absl::StrCat(
            "layer ", layer, ": the GPU gate chose expert ", chosen));
        break;
      }
    }
  }
  batch.assignments.clear();
  for (int64_t r = 0; r < n; ++r) {
    // A step whose rows failed (at this layer or an earlier one) is not
    // sent again.
    if (!batch.failed[batch.sequences[r]].ok()) continue;
    for (int j = 0; j < c.top_k; ++j) {
      const int32_t expert = ids[r * c.top_k + j];
      batch.assignments.push_back(
          {static_cast<int32_t>(r), expert, weights[r * c.top_k + j]});
      ++mutable_routed_counts()[static_cast<size_t>(layer) * c.num_experts +
                                expert];
    }
  }
  batch.expert_out.resize(n * hidden);
  batch.pending = experts_.Start(
      {layer, batch.expert_input.data(), n, batch.assignments, batch.deadlines},
      batch.expert_out.data());
  return absl::OkStatus();
}

absl::Status GpuModelRunner::AddExperts(MicroBatch& batch) {
  const int64_t count = batch.rows() * config().hidden_size;
  std::vector<RowFailure> failures;
  const auto start = std::chrono::steady_clock::now();
  std::unique_ptr<PendingExperts> pending = std::move(batch.pending);
  const absl::Status status = pending->Wait(failures);
  mutable_counters().expert_wait_us += MicrosSince(start);
  for (absl::Status& member : batch.failed) {
    if (!status.ok() && member.ok()) member = status;
  }
  for (const RowFailure& failure : failures) {
    absl::Status& member = batch.failed[batch.sequences[failure.row]];
    if (member.ok()) member = failure.status;
  }
  MOE_RETURN_IF_ERROR(CudaStatus(cudaSetDevice(device_), "cudaSetDevice"));
  MOE_RETURN_IF_ERROR(
      CudaStatus(cudaMemcpy(batch.routed_out.get(), batch.expert_out.data(),
                            count * sizeof(float), cudaMemcpyHostToDevice),
                 "expert results"));
  return CudaStatus(
      cuda::AddResidual(batch.x.get<float>(), batch.routed_out.get<float>(),
                        count, nullptr),
      "expert residual");
}

absl::Status GpuModelRunner::Logits(
    std::span<const SequenceStep> steps, MicroBatch& batch,
    std::vector<absl::StatusOr<std::vector<float>>>& results) {
  const ModelConfig& c = config();
  const int64_t n = batch.rows();
  const int64_t hidden = c.hidden_size;
  // The rows whose logits are wanted, gathered from the normalized rows
  // (the embedding lookup gathers rows of any BF16 table).
  std::vector<int32_t> wanted;
  for (size_t m = 0; m < batch.members.size(); ++m) {
    const SequenceStep& step = steps[batch.members[m]];
    if (!batch.failed[m].ok() || step.logits_for == LogitsFor::kNone) continue;
    const int64_t count = static_cast<int64_t>(step.tokens.size());
    for (int64_t i = step.logits_for == LogitsFor::kAllTokens ? 0 : count - 1;
         i < count; ++i) {
      wanted.push_back(static_cast<int32_t>(batch.first_row[m] + i));
    }
  }
  const int64_t rows = static_cast<int64_t>(wanted.size());
  std::vector<float> logits;
  if (rows > 0) {
    MOE_RETURN_IF_ERROR(CudaStatus(
        cuda::RmsNorm(batch.x.get<float>(), static_cast<int>(n), c.hidden_size,
                      final_norm_, static_cast<float>(c.rms_norm_eps),
                      batch.normed.get<__nv_bfloat16>(), nullptr),
        "final norm"));
    MOE_ASSIGN_OR_RETURN(const int32_t* wanted_rows,
                         CopyToDevice(wanted, batch.wanted_d, "logit rows"));
    for (const RowBuffer& b : LogitBuffers()) {
      MOE_RETURN_IF_ERROR(Reserve(batch.*b.buffer, rows * b.row_bytes, b.what));
    }
    MOE_RETURN_IF_ERROR(CudaStatus(
        cuda::EmbedTokens(batch.normed.get<__nv_bfloat16>(), c.hidden_size,
                          wanted_rows, static_cast<int>(rows),
                          batch.logit_input.get<float>(), nullptr),
        "gather logit rows"));
    MOE_RETURN_IF_ERROR(CudaStatus(
        cuda::ConvertToBf16(batch.logit_input.get<float>(), rows * hidden,
                            batch.logit_input_bf16.get<__nv_bfloat16>(),
                            nullptr),
        "logit rows to BF16"));
    std::string error;
    MOE_RETURN_IF_ERROR(Launched(
        lm_matmul_->Run(cuda::GemmInput::kBf16, lm_head_,
                        batch.logit_input_bf16.get(), batch.logits.get<float>(),
                        c.vocab_size, rows, hidden, nullptr, &error),
        error));
    MOE_RETURN_IF_ERROR(CopyToHost(batch.logits.get<float>(),
                                   rows * c.vocab_size, logits, "logits"));
  }
  const float* next = logits.data();
  for (size_t m = 0; m < batch.members.size(); ++m) {
    const SequenceStep& step = steps[batch.members[m]];
    if (!batch.failed[m].ok()) continue;
    const int64_t count = (step.logits_for == LogitsFor::kAllTokens
                               ? static_cast<int64_t>(step.tokens.size())
                           : step.logits_for == LogitsFor::kLastToken ? 1
                                                                      : 0) *
                          c.vocab_size;
    results[batch.members[m]] = std::vector<float>(next, next + count);
    next += count;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<ModelRunner>> NewGpuModelRunner(
    const ModelWeights& weights, ExpertDispatch& experts, int device,
    const ModelRunnerOptions& options) {
  if (weights.config().two_layer_gate) {
    return absl::UnimplementedError(
        "\"moe_2layer_gate\": true: the router's GPU path computes a "
        "one-layer gate only; run this model's router on the CPU (no "
        "--router-device)");
  }
  const int count = cuda::DeviceCount();
  if (device < 0 || device >= count) {
    return absl::FailedPreconditionError(
        absl::StrCat("--router-device ", device, ": this machine has ",
                     count == 0 ? "no CUDA device (or no driver)"
                                : absl::StrCat(count, " CUDA devices")));
  }
  auto runner =
      std::make_unique<GpuModelRunner>(weights, experts, device, options);
  MOE_RETURN_IF_ERROR(runner->Init());
  return runner;
}

}  // namespace moe

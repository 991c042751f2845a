#include "router_service/gpu_model_runner.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <chrono>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/cuda/convert.h"
#include "core/cuda/cuda_check.h"
#include "core/cuda/device_buffer.h"
#include "core/cuda/device_info.h"
#include "core/cuda/embedding.h"
#include "core/cuda/lt_matmul.h"
#include "core/cuda/residual.h"
#include "core/cuda/rms_norm.h"
#include "core/cuda/router_layer.h"
#include "core/status_macros.h"

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

double MicrosSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::micro>(
             std::chrono::steady_clock::now() - start)
      .count();
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
  MOE_RETURN_IF_ERROR(CudaStatus(
      buffer.Reserve(std::max<size_t>(1, host.size() * sizeof(T))), what));
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
      : weights_(weights),
        experts_(experts),
        device_(device),
        kv_pool_(weights.config().num_layers,
                 static_cast<int64_t>(weights.config().num_kv_heads) *
                     weights.config().head_dim,
                 options.kv_cache),
        routed_counts_(static_cast<size_t>(weights.config().num_layers) *
                       weights.config().num_experts) {}

  // Its device memory is freed on its device.
  ~GpuModelRunner() override { cudaSetDevice(device_); }

  // Checks the memory, then copies the weights and makes the KV pools.
  absl::Status Init();

  const ModelConfig& config() const override { return weights_.config(); }
  KvBlockPool& kv_pool() override { return kv_pool_; }
  std::vector<absl::StatusOr<std::vector<float>>> ForwardBatch(
      std::span<const SequenceStep> steps) override;
  const std::vector<int64_t>& routed_counts() const override {
    return routed_counts_;
  }
  const RunnerCounters& counters() const override { return counters_; }

 private:
  // The rows of one pass: every valid step's tokens, in step order.
  struct Rows {
    std::vector<int32_t> tokens, sequences, positions, offsets, tables;
    std::vector<absl::Time> deadlines;
    std::vector<size_t> first_row;  // per valid step
    int64_t count() const { return static_cast<int64_t>(tokens.size()); }
  };

  template <typename T>
  absl::StatusOr<const T*> Keep(const std::vector<T>& host, const char* what) {
    storage_.emplace_back();
    return CopyToDevice(host, storage_.back(), what);
  }
  absl::Status EnsureLayer(int64_t rows);
  // Runs the pass; `failed` gets the steps whose expert rows failed. An
  // error fails every step.
  absl::Status Run(std::span<const SequenceStep> steps,
                   const std::vector<size_t>& valid, const Rows& rows,
                   std::vector<absl::Status>& failed,
                   std::vector<float>& logits);
  // The layer's experts for the routed rows, added to the hidden rows.
  absl::Status RunExperts(int layer, const Rows& rows,
                          const std::vector<size_t>& row_step,
                          std::vector<absl::Status>& failed);

  const ModelWeights& weights_;
  ExpertDispatch& experts_;
  const int device_;
  KvBlockPool kv_pool_;  // block accounting; the data lives on the device
  std::vector<int64_t> routed_counts_;
  RunnerCounters counters_;

  std::vector<DeviceBuffer> storage_;  // weights and KV pools
  std::vector<cuda::RouterLayerWeights> layer_weights_;
  std::vector<__nv_bfloat16*> key_pools_, value_pools_;
  const __nv_bfloat16* embed_tokens_ = nullptr;
  const __nv_bfloat16* final_norm_ = nullptr;
  const __nv_bfloat16* lm_head_ = nullptr;
  cuda::PagedKvLayout layout_;
  cuda::RouterLayerShape shape_;
  std::unique_ptr<cuda::RouterLayer> layer_;
  int64_t layer_rows_ = 0;
  std::unique_ptr<cuda::LtMatmul> lm_matmul_;
  // Per-pass scratch.
  DeviceBuffer tokens_, sequences_, positions_, offsets_, tables_, x_,
      expert_input_, expert_ids_, expert_weights_, expert_out_, normed_,
      logit_rows_, logit_input_, logit_rows_bf16_, logits_;
};

absl::Status GpuModelRunner::Init() {
  const ModelConfig& c = config();
  MOE_RETURN_IF_ERROR(CudaStatus(cudaSetDevice(device_), "cudaSetDevice"));
  // Everything the device will hold, checked before any of it is copied.
  const int64_t hidden = c.hidden_size;
  const int64_t q_width = int64_t{c.num_heads} * c.head_dim;
  const int64_t kv_width = int64_t{c.num_kv_heads} * c.head_dim;
  const int64_t layer_elements = 2 * hidden + 2 * q_width * hidden +
                                 2 * kv_width * hidden +
                                 int64_t{c.num_experts} * hidden;
  layout_ = {static_cast<int>(kv_pool_.total_blocks()), kv_pool_.block_size(),
             c.num_kv_heads, c.head_dim};
  const int64_t weight_bytes =
      2 * (c.num_layers * layer_elements + 2 * int64_t{c.vocab_size} * hidden +
           hidden);
  const int64_t kv_bytes =
      int64_t{c.num_layers} * 2 * layout_.PoolElements() * 2;
  cuda::DeviceMemory memory;
  std::string error;
  if (!cuda::QueryDeviceMemory(device_, &memory, &error)) {
    return absl::InternalError(error);
  }
  if (static_cast<size_t>(weight_bytes + kv_bytes) > memory.free_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "--router-device ", device_, ": the dense weights (", weight_bytes,
        " bytes as BF16) and the KV cache (", kv_bytes,
        " bytes) need more "
        "than the ",
        memory.free_bytes, " bytes free"));
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
      MOE_RETURN_IF_ERROR(CudaStatus(
          storage_.back().Reserve(layout_.PoolElements() * 2), "KV pool"));
      pools->push_back(storage_.back().get<__nv_bfloat16>());
    }
  }
  shape_.hidden = c.hidden_size;
  shape_.heads = c.num_heads;
  shape_.kv_heads = c.num_kv_heads;
  shape_.head_dim = c.head_dim;
  shape_.sliding_window = c.sliding_window;
  shape_.rope_theta = c.rope_theta;
  shape_.rms_norm_eps = static_cast<float>(c.rms_norm_eps);
  shape_.gating = {c.num_experts, c.top_k, c.use_logits_norm,
                   static_cast<float>(c.gate_norm_std)};
  lm_matmul_ = cuda::LtMatmul::Create(&error);
  if (lm_matmul_ == nullptr) return absl::InternalError(error);
  return EnsureLayer(1);
}

absl::Status GpuModelRunner::EnsureLayer(int64_t rows) {
  if (layer_ != nullptr && rows <= layer_rows_) return absl::OkStatus();
  std::string error;
  layer_ = cuda::RouterLayer::Create(shape_, static_cast<int>(rows), &error);
  if (layer_ == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("--router-device ", device_, ": ", error));
  }
  layer_rows_ = rows;
  return absl::OkStatus();
}

std::vector<absl::StatusOr<std::vector<float>>> GpuModelRunner::ForwardBatch(
    std::span<const SequenceStep> steps) {
  const ModelConfig& c = config();
  std::vector<absl::StatusOr<std::vector<float>>> results(steps.size());
  std::vector<size_t> valid;
  Rows rows;
  for (size_t s = 0; s < steps.size(); ++s) {
    if (absl::Status status = CheckStep(steps[s]); !status.ok()) {
      results[s] = status;
      continue;
    }
    const SequenceStep& step = steps[s];
    const int32_t sequence = static_cast<int32_t>(valid.size());
    valid.push_back(s);
    rows.first_row.push_back(rows.tokens.size());
    rows.offsets.push_back(static_cast<int32_t>(rows.tables.size()));
    const std::vector<int32_t>& blocks = step.cache->blocks();
    rows.tables.insert(rows.tables.end(), blocks.begin(), blocks.end());
    for (size_t i = 0; i < step.tokens.size(); ++i) {
      rows.tokens.push_back(step.tokens[i]);
      rows.sequences.push_back(sequence);
      rows.positions.push_back(
          static_cast<int32_t>(step.cache->length() + int64_t(i)));
      rows.deadlines.push_back(step.deadline);
    }
  }
  if (valid.empty()) return results;
  ++counters_.forward_passes;

  std::vector<absl::Status> failed(valid.size());
  std::vector<float> logits;
  const absl::Status status = Run(steps, valid, rows, failed, logits);
  const float* next = logits.data();
  for (size_t v = 0; v < valid.size(); ++v) {
    const SequenceStep& step = steps[valid[v]];
    if (!status.ok() || !failed[v].ok()) {
      results[valid[v]] = status.ok() ? failed[v] : status;
      continue;
    }
    step.cache->SetLength(step.cache->length() +
                          static_cast<int64_t>(step.tokens.size()));
    const int64_t count = (step.logits_for == LogitsFor::kAllTokens
                               ? static_cast<int64_t>(step.tokens.size())
                           : step.logits_for == LogitsFor::kLastToken ? 1
                                                                      : 0) *
                          c.vocab_size;
    results[valid[v]] = std::vector<float>(next, next + count);
    next += count;
  }
  return results;
}

absl::Status GpuModelRunner::Run(std::span<const SequenceStep> steps,
                                 const std::vector<size_t>& valid,
                                 const Rows& rows,
                                 std::vector<absl::Status>& failed,
                                 std::vector<float>& logits) {
  const ModelConfig& c = config();
  const int64_t n = rows.count();
  const int64_t hidden = c.hidden_size;
  MOE_RETURN_IF_ERROR(CudaStatus(cudaSetDevice(device_), "cudaSetDevice"));
  MOE_RETURN_IF_ERROR(EnsureLayer(n));
  cuda::PagedBatch batch;
  batch.rows = static_cast<int>(n);
  MOE_ASSIGN_OR_RETURN(batch.row_sequences,
                       CopyToDevice(rows.sequences, sequences_, "rows"));
  MOE_ASSIGN_OR_RETURN(batch.row_positions,
                       CopyToDevice(rows.positions, positions_, "rows"));
  MOE_ASSIGN_OR_RETURN(batch.block_table_offsets,
                       CopyToDevice(rows.offsets, offsets_, "block tables"));
  MOE_ASSIGN_OR_RETURN(batch.block_tables,
                       CopyToDevice(rows.tables, tables_, "block tables"));
  MOE_ASSIGN_OR_RETURN(const int32_t* tokens,
                       CopyToDevice(rows.tokens, tokens_, "tokens"));
  for (DeviceBuffer* buffer : {&x_, &expert_input_, &expert_out_}) {
    MOE_RETURN_IF_ERROR(
        CudaStatus(buffer->Reserve(n * hidden * 4), "hidden rows"));
  }
  MOE_RETURN_IF_ERROR(
      CudaStatus(expert_ids_.Reserve(n * c.top_k * 4), "expert ids"));
  MOE_RETURN_IF_ERROR(
      CudaStatus(expert_weights_.Reserve(n * c.top_k * 4), "expert weights"));
  MOE_RETURN_IF_ERROR(CudaStatus(
      cuda::EmbedTokens(embed_tokens_, c.hidden_size, tokens,
                        static_cast<int>(n), x_.get<float>(), nullptr),
      "embeddings"));

  std::vector<size_t> row_step(n);  // index into valid
  for (size_t v = 0; v < valid.size(); ++v) {
    const size_t end =
        v + 1 < valid.size() ? rows.first_row[v + 1] : static_cast<size_t>(n);
    for (size_t r = rows.first_row[v]; r < end; ++r) row_step[r] = v;
  }
  for (int layer = 0; layer < c.num_layers; ++layer) {
    // The expert dispatch may have made another GPU current (an NCCL link
    // on --nccl-device).
    MOE_RETURN_IF_ERROR(CudaStatus(cudaSetDevice(device_), "cudaSetDevice"));
    const auto start = std::chrono::steady_clock::now();
    std::string error;
    MOE_RETURN_IF_ERROR(
        Launched(layer_->AttendAndRoute(
                     layer_weights_[layer], x_.get<float>(), batch, layout_,
                     key_pools_[layer], value_pools_[layer],
                     {expert_input_.get<float>(), expert_ids_.get<int32_t>(),
                      expert_weights_.get<float>()},
                     nullptr, &error),
                 error));
    // The legacy stream only: a device-wide wait would also wait for NCCL
    // receives parked on other streams.
    MOE_RETURN_IF_ERROR(
        CudaStatus(cudaStreamSynchronize(nullptr), "attention and gating"));
    counters_.attention_us += MicrosSince(start);
    MOE_RETURN_IF_ERROR(RunExperts(layer, rows, row_step, failed));
  }

  // The LM head over the rows whose logits are wanted, gathered from the
  // normalized rows (the embedding lookup gathers rows of any BF16 table).
  std::vector<int32_t> wanted;
  for (size_t v = 0; v < valid.size(); ++v) {
    const SequenceStep& step = steps[valid[v]];
    if (!failed[v].ok() || step.logits_for == LogitsFor::kNone) continue;
    const int64_t count = static_cast<int64_t>(step.tokens.size());
    for (int64_t i = step.logits_for == LogitsFor::kAllTokens ? 0 : count - 1;
         i < count; ++i) {
      wanted.push_back(static_cast<int32_t>(rows.first_row[v] + i));
    }
  }
  const int64_t m = static_cast<int64_t>(wanted.size());
  if (m == 0) return absl::OkStatus();
  MOE_RETURN_IF_ERROR(CudaStatus(cudaSetDevice(device_), "cudaSetDevice"));
  MOE_RETURN_IF_ERROR(CudaStatus(normed_.Reserve(n * hidden * 2), "norm"));
  MOE_RETURN_IF_ERROR(CudaStatus(
      cuda::RmsNorm(x_.get<float>(), static_cast<int>(n), c.hidden_size,
                    final_norm_, static_cast<float>(c.rms_norm_eps),
                    normed_.get<__nv_bfloat16>(), nullptr),
      "final norm"));
  MOE_ASSIGN_OR_RETURN(const int32_t* wanted_rows,
                       CopyToDevice(wanted, logit_rows_, "logit rows"));
  MOE_RETURN_IF_ERROR(
      CudaStatus(logit_input_.Reserve(m * hidden * 4), "logit rows"));
  MOE_RETURN_IF_ERROR(
      CudaStatus(logit_rows_bf16_.Reserve(m * hidden * 2), "logit rows"));
  MOE_RETURN_IF_ERROR(
      CudaStatus(logits_.Reserve(m * int64_t{c.vocab_size} * 4), "logits"));
  MOE_RETURN_IF_ERROR(
      CudaStatus(cuda::EmbedTokens(normed_.get<__nv_bfloat16>(), c.hidden_size,
                                   wanted_rows, static_cast<int>(m),
                                   logit_input_.get<float>(), nullptr),
                 "gather logit rows"));
  MOE_RETURN_IF_ERROR(CudaStatus(
      cuda::ConvertToBf16(logit_input_.get<float>(), m * hidden,
                          logit_rows_bf16_.get<__nv_bfloat16>(), nullptr),
      "logit rows to BF16"));
  std::string error;
  MOE_RETURN_IF_ERROR(
      Launched(lm_matmul_->Run(cuda::GemmInput::kBf16, lm_head_,
                               logit_rows_bf16_.get(), logits_.get<float>(),
                               c.vocab_size, m, hidden, nullptr, &error),
               error));
  return CopyToHost(logits_.get<float>(), m * c.vocab_size, logits, "logits");
}

absl::Status GpuModelRunner::RunExperts(int layer, const Rows& rows,
                                        const std::vector<size_t>& row_step,
                                        std::vector<absl::Status>& failed) {
  const ModelConfig& c = config();
  const int64_t n = rows.count();
  const int64_t hidden = c.hidden_size;
  std::vector<float> input, weights;
  std::vector<int32_t> ids;
  MOE_RETURN_IF_ERROR(
      CopyToHost(expert_input_.get<float>(), n * hidden, input, "expert rows"));
  MOE_RETURN_IF_ERROR(
      CopyToHost(expert_ids_.get<int32_t>(), n * c.top_k, ids, "expert ids"));
  MOE_RETURN_IF_ERROR(CopyToHost(expert_weights_.get<float>(), n * c.top_k,
                                 weights, "expert weights"));
  std::vector<ExpertAssignment> assignments;
  assignments.reserve(ids.size());
  for (int64_t r = 0; r < n; ++r) {
    // A step whose rows failed at an earlier layer is not sent again.
    if (!failed[row_step[r]].ok()) continue;
    for (int j = 0; j < c.top_k; ++j) {
      const int32_t expert = ids[r * c.top_k + j];
      // NaN gate logits have no order: the selection is then meaningless.
      if (expert < 0 || expert >= c.num_experts) {
        return absl::InternalError(
            absl::StrCat("layer ", layer, ": the GPU gate chose expert ",
                         expert, " (non-finite gate logits?)"));
      }
      assignments.push_back(
          {static_cast<int32_t>(r), expert, weights[r * c.top_k + j]});
      ++routed_counts_[static_cast<size_t>(layer) * c.num_experts + expert];
    }
  }
  std::vector<float> out(n * hidden, 0.0f);
  std::vector<RowFailure> failures;
  const auto start = std::chrono::steady_clock::now();
  MOE_RETURN_IF_ERROR(
      experts_.Compute({layer, input.data(), n, assignments, rows.deadlines},
                       out.data(), failures));
  counters_.expert_wait_us += MicrosSince(start);
  for (const RowFailure& failure : failures) {
    absl::Status& status = failed[row_step[failure.row]];
    if (status.ok()) status = failure.status;
  }
  MOE_RETURN_IF_ERROR(
      CudaStatus(cudaMemcpy(expert_out_.get(), out.data(),
                            out.size() * sizeof(float), cudaMemcpyHostToDevice),
                 "expert results"));
  return CudaStatus(cuda::AddResidual(x_.get<float>(), expert_out_.get<float>(),
                                      n * hidden, nullptr),
                    "expert residual");
}

}  // namespace

absl::StatusOr<std::unique_ptr<ModelRunner>> NewGpuModelRunner(
    const ModelWeights& weights, ExpertDispatch& experts, int device,
    const ModelRunnerOptions& options) {
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

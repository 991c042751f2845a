#include "engine/cuda/router_layer.h"

#include <array>

#include "core/cuda/cuda_check.h"
#include "engine/cuda/convert.h"
#include "engine/cuda/paged_attention.h"
#include "engine/cuda/residual.h"
#include "engine/cuda/rms_norm.h"
#include "engine/cuda/rotary.h"

namespace moe::cuda {
namespace {

// "what: error" into *error when `status` failed.
bool Launched(cudaError_t status, const char* what, std::string* error) {
  if (status == cudaSuccess) return true;
  *error = CudaErrorText(status, what);
  return false;
}

// Bytes per row of each scratch buffer, in Create's order. Shared by
// Create and DeviceBytes, so that what a caller budgets is what is taken.
std::array<size_t, 8> ScratchRowBytes(const RouterLayerShape& shape) {
  const size_t hidden = shape.hidden;
  const size_t q_width = size_t{1} * shape.heads * shape.head_dim;
  const size_t kv_width = size_t{1} * shape.kv_heads * shape.head_dim;
  return {
      hidden * 2,                        // normed_ (BF16)
      q_width * 4,                       // q_
      kv_width * 4,                      // k_
      kv_width * 4,                      // v_
      q_width * 4,                       // attention_
      q_width * 2,                       // attention_bf16_
      hidden * 4,                        // o_
      size_t{4} * shape.gating.experts,  // logits_
  };
}

}  // namespace

size_t RouterLayer::DeviceBytes(const RouterLayerShape& shape, int max_rows) {
  size_t row_bytes = 0;
  for (size_t bytes : ScratchRowBytes(shape)) row_bytes += bytes;
  return static_cast<size_t>(max_rows) * row_bytes + LtMatmul::kWorkspaceBytes;
}

std::unique_ptr<RouterLayer> RouterLayer::Create(const RouterLayerShape& shape,
                                                 int max_rows,
                                                 std::string* error,
                                                 cudaError_t* cuda_status) {
  if (cuda_status != nullptr) *cuda_status = cudaSuccess;
  const int q_width = shape.heads * shape.head_dim;
  // BF16 products need rows of a multiple of 16 bytes.
  if (shape.hidden < 1 || shape.heads < 1 || shape.kv_heads < 1 ||
      shape.heads % shape.kv_heads != 0 || shape.head_dim < 2 ||
      shape.head_dim % 2 != 0 || shape.head_dim > kMaxAttentionHeadDim ||
      shape.hidden % 8 != 0 || q_width % 8 != 0 || shape.sliding_window < 0 ||
      max_rows < 1) {
    *error =
        "router layer: hidden and heads * head_dim must be multiples of 8, "
        "heads a multiple of kv_heads, head_dim even and in [2, 256], "
        "max_rows >= 1";
    return nullptr;
  }
  if (shape.gating.experts < 1 || shape.gating.experts > kMaxGatingExperts ||
      shape.gating.top_k < 1 || shape.gating.top_k > shape.gating.experts ||
      shape.gating.top_k > kMaxGatingTopK) {
    *error =
        "router layer: experts must be in [1, 64] and top_k in [1, "
        "min(experts, 32)]";
    return nullptr;
  }
  std::unique_ptr<LtMatmul> matmul = LtMatmul::Create(error, cuda_status);
  if (!matmul) return nullptr;
  auto layer = std::unique_ptr<RouterLayer>(
      new RouterLayer(shape, max_rows, std::move(matmul)));
  DeviceBuffer* const scratch[] = {
      &layer->normed_, &layer->q_,         &layer->k_,
      &layer->v_,      &layer->attention_, &layer->attention_bf16_,
      &layer->o_,      &layer->logits_,
  };
  const std::array<size_t, 8> row_bytes = ScratchRowBytes(shape);
  for (size_t i = 0; i < row_bytes.size(); ++i) {
    const cudaError_t status =
        scratch[i]->Reserve(static_cast<size_t>(max_rows) * row_bytes[i]);
    if (!Launched(status, "router layer scratch", error)) {
      if (cuda_status != nullptr) *cuda_status = status;
      return nullptr;
    }
  }
  return layer;
}

bool RouterLayer::AttendAndRoute(const RouterLayerWeights& weights, float* x,
                                 const PagedBatch& batch,
                                 const PagedKvLayout& layout,
                                 __nv_bfloat16* key_pool,
                                 __nv_bfloat16* value_pool,
                                 const RoutedRows& routed, cudaStream_t stream,
                                 std::string* error) {
  const int rows = batch.rows;
  if (rows > max_rows_) {
    *error = "router layer: the batch has more rows than the layer's max_rows";
    return false;
  }
  if (layout.kv_heads != shape_.kv_heads ||
      layout.head_dim != shape_.head_dim) {
    *error =
        "router layer: the KV cache's kv_heads and head_dim are not the "
        "layer's";
    return false;
  }
  if (rows == 0) return true;
  const RouterLayerShape& s = shape_;
  const int q_width = s.heads * s.head_dim;
  const int kv_width = s.kv_heads * s.head_dim;
  __nv_bfloat16* normed = normed_.get<__nv_bfloat16>();
  // out[rows, width] = in[rows, in_width] . weight[width, in_width]^T
  auto product = [&](const __nv_bfloat16* weight, const void* in, float* out,
                     int width, int in_width) {
    return matmul_->Run(GemmInput::kBf16, weight, in, out, width, rows,
                        in_width, stream, error);
  };
  return Launched(RmsNorm(x, rows, s.hidden, weights.input_norm, s.rms_norm_eps,
                          normed, stream),
                  "input RMSNorm", error) &&
         product(weights.q, normed, q_.get<float>(), q_width, s.hidden) &&
         product(weights.k, normed, k_.get<float>(), kv_width, s.hidden) &&
         product(weights.v, normed, v_.get<float>(), kv_width, s.hidden) &&
         Launched(ApplyRotary(q_.get<float>(), rows, s.heads, s.head_dim,
                              batch.row_positions, s.rope_theta, stream),
                  "rotary embedding of q", error) &&
         Launched(ApplyRotary(k_.get<float>(), rows, s.kv_heads, s.head_dim,
                              batch.row_positions, s.rope_theta, stream),
                  "rotary embedding of k", error) &&
         Launched(WritePagedKv(k_.get<float>(), v_.get<float>(), batch, layout,
                               key_pool, value_pool, stream),
                  "KV cache write", error) &&
         Launched(PagedAttention(q_.get<float>(), s.heads, s.sliding_window,
                                 batch, layout, key_pool, value_pool,
                                 attention_.get<float>(), stream),
                  "paged attention", error) &&
         Launched(
             ConvertToBf16(attention_.get<float>(), int64_t{rows} * q_width,
                           attention_bf16_.get<__nv_bfloat16>(), stream),
             "attention output to BF16", error) &&
         product(weights.o, attention_bf16_.get(), o_.get<float>(), s.hidden,
                 q_width) &&
         Launched(
             AddResidual(x, o_.get<float>(), int64_t{rows} * s.hidden, stream),
             "attention residual", error) &&
         Launched(RmsNorm(x, rows, s.hidden, weights.post_attention_norm,
                          s.rms_norm_eps, routed.expert_input, stream),
                  "post-attention RMSNorm", error) &&
         Launched(ConvertToBf16(routed.expert_input, int64_t{rows} * s.hidden,
                                normed, stream),
                  "gate input to BF16", error) &&
         product(weights.gate, normed, logits_.get<float>(), s.gating.experts,
                 s.hidden) &&
         Launched(
             SelectExperts(logits_.get<float>(), rows, s.gating,
                           routed.expert_ids, routed.expert_weights, stream),
             "expert selection", error);
}

}  // namespace moe::cuda

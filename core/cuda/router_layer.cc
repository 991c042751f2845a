#include "core/cuda/router_layer.h"

#include "core/cuda/convert.h"
#include "core/cuda/cuda_check.h"
#include "core/cuda/paged_attention.h"
#include "core/cuda/residual.h"
#include "core/cuda/rms_norm.h"
#include "core/cuda/rotary.h"

namespace moe::cuda {
namespace {

// "what: error" into *error when `status` failed.
bool Launched(cudaError_t status, const char* what, std::string* error) {
  if (status == cudaSuccess) return true;
  *error = CudaErrorText(status, what);
  return false;
}

}  // namespace

std::unique_ptr<RouterLayer> RouterLayer::Create(const RouterLayerShape& shape,
                                                 int max_rows,
                                                 std::string* error) {
  const int q_width = shape.heads * shape.head_dim;
  const int kv_width = shape.kv_heads * shape.head_dim;
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
  std::unique_ptr<LtMatmul> matmul = LtMatmul::Create(error);
  if (!matmul) return nullptr;
  auto layer = std::unique_ptr<RouterLayer>(
      new RouterLayer(shape, max_rows, std::move(matmul)));
  const size_t rows = static_cast<size_t>(max_rows);
  const struct {
    DeviceBuffer* buffer;
    size_t bytes;
  } scratch[] = {
      {&layer->normed_, rows * shape.hidden * 2},
      {&layer->q_, rows * q_width * 4},
      {&layer->k_, rows * kv_width * 4},
      {&layer->v_, rows * kv_width * 4},
      {&layer->attention_, rows * q_width * 4},
      {&layer->attention_bf16_, rows * q_width * 2},
      {&layer->o_, rows * shape.hidden * 4},
      {&layer->logits_, rows * shape.gating.experts * 4},
  };
  for (const auto& [buffer, bytes] : scratch) {
    if (!Launched(buffer->Reserve(bytes), "router layer scratch", error)) {
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

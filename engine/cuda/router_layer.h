#ifndef MOE_ENGINE_CUDA_ROUTER_LAYER_H_
#define MOE_ENGINE_CUDA_ROUTER_LAYER_H_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <string>

#include "core/cuda/device_buffer.h"
#include "core/cuda/lt_matmul.h"
#include "engine/cuda/moe_gating.h"
#include "engine/cuda/paged_kv.h"

namespace moe::cuda {

// The shape of a decoder layer's router part.
struct RouterLayerShape {
  int hidden = 0;
  int heads = 0;
  int kv_heads = 0;
  int head_dim = 0;
  int sliding_window = 0;  // 0: none
  double rope_theta = 10000.0;
  float rms_norm_eps = 1e-6f;
  GatingOptions gating;  // experts, top_k, Skywork's logit normalization
};

// One layer's weights on the device, BF16, row-major as checkpoints store
// them ([out, in]).
struct RouterLayerWeights {
  const __nv_bfloat16* input_norm = nullptr;  // [hidden]
  const __nv_bfloat16* q = nullptr;           // [heads * head_dim, hidden]
  const __nv_bfloat16* k = nullptr;           // [kv_heads * head_dim, hidden]
  const __nv_bfloat16* v = nullptr;           // [kv_heads * head_dim, hidden]
  const __nv_bfloat16* o = nullptr;           // [hidden, heads * head_dim]
  const __nv_bfloat16* post_attention_norm = nullptr;  // [hidden]
  const __nv_bfloat16* gate = nullptr;                 // [experts, hidden]
};

// Where a layer's routed rows go: the experts' input and their choice.
struct RoutedRows {
  float* expert_input = nullptr;    // [rows, hidden]: post-attention RMSNorm
  int32_t* expert_ids = nullptr;    // [rows, top_k]
  float* expert_weights = nullptr;  // [rows, top_k], each row summing to 1
};

// The router's part of one decoder layer on the GPU, up to the experts:
//   x += o(attention(rope(q(n)), rope(k(n)), v(n))),  n = RMSNorm(x)
//   expert_input = RMSNorm'(x); route top-k of softmax(gate(expert_input))
// over a ragged batch (prefill chunks and decode rows) whose keys and values
// go into the paged cache. BF16 products through cuBLASLt with float32
// accumulation; activations float32 between them. Holds the scratch space
// for up to `max_rows` rows; not thread-safe (one stream at a time).
class RouterLayer {
 public:
  // nullptr + *error for a shape it cannot run or a failed allocation;
  // *cuda_status (when given) is then the allocation's CUDA error
  // (cudaErrorMemoryAllocation: out of device memory), cudaSuccess for a
  // refused shape.
  static std::unique_ptr<RouterLayer> Create(
      const RouterLayerShape& shape, int max_rows, std::string* error,
      cudaError_t* cuda_status = nullptr);

  // The device memory Create allocates for `max_rows` rows: the scratch and
  // the cuBLASLt workspace.
  static size_t DeviceBytes(const RouterLayerShape& shape, int max_rows);

  const RouterLayerShape& shape() const { return shape_; }

  // Enqueues the layer on `stream` for batch.rows rows of x float32 [rows,
  // hidden] (updated in place). false + *error for a batch above max_rows or
  // a failed launch.
  bool AttendAndRoute(const RouterLayerWeights& weights, float* x,
                      const PagedBatch& batch, const PagedKvLayout& layout,
                      __nv_bfloat16* key_pool, __nv_bfloat16* value_pool,
                      const RoutedRows& routed, cudaStream_t stream,
                      std::string* error);

 private:
  RouterLayer(const RouterLayerShape& shape, int max_rows,
              std::unique_ptr<LtMatmul> matmul)
      : shape_(shape), max_rows_(max_rows), matmul_(std::move(matmul)) {}

  const RouterLayerShape shape_;
  const int max_rows_;
  std::unique_ptr<LtMatmul> matmul_;
  // Scratch: normalized rows (BF16, the products' input), q, k, v, the
  // attention output (float32, then BF16), o and the gate logits.
  DeviceBuffer normed_, q_, k_, v_, attention_, attention_bf16_, o_, logits_;
};

}  // namespace moe::cuda

#endif  // MOE_ENGINE_CUDA_ROUTER_LAYER_H_

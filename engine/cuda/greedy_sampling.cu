#include <climits>

#include "core/cuda/cuda_check.h"
#include "core/cuda/warp_reduce.cuh"
#include "engine/cuda/greedy_sampling.h"

namespace moe::cuda {
namespace {

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;

// One block per row. Each thread scans a strided share of the row in
// increasing index order, so a strict > keeps its lowest index among ties;
// warps and then the block merge candidates by (logit, lower index). A
// thread with no column starts from (-inf, INT_MAX), which loses to every
// real column, -inf ones included.
__global__ void __launch_bounds__(kThreads)
    GreedySampleKernel(const float* logits, int vocab, int32_t* token_ids) {
  __shared__ float warp_best[kWarps];
  __shared__ int warp_best_id[kWarps];
  const float* row = logits + int64_t{blockIdx.x} * vocab;
  const int thread = threadIdx.x;
  float best = -INFINITY;
  int best_id = INT_MAX;
  if (thread < vocab) {
    best = row[thread];
    best_id = thread;
  }
  for (int c = thread + kThreads; c < vocab; c += kThreads) {
    if (row[c] > best) {
      best = row[c];
      best_id = c;
    }
  }
  WarpArgmax(best, best_id);
  const int warp = thread / 32;
  const int lane = thread % 32;
  if (lane == 0) {
    warp_best[warp] = best;
    warp_best_id[warp] = best_id;
  }
  __syncthreads();
  if (warp != 0) return;
  best = lane < kWarps ? warp_best[lane] : -INFINITY;
  best_id = lane < kWarps ? warp_best_id[lane] : INT_MAX;
  WarpArgmax(best, best_id);
  if (lane == 0) token_ids[blockIdx.x] = best_id;
}

}  // namespace

cudaError_t GreedySample(const float* logits, int n, int vocab,
                         int32_t* token_ids, cudaStream_t stream) {
  if (n < 0 || vocab < 1) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  if (logits == nullptr || token_ids == nullptr) return cudaErrorInvalidValue;
  return LaunchError([&] {
    GreedySampleKernel<<<n, kThreads, 0, stream>>>(logits, vocab, token_ids);
  });
}

}  // namespace moe::cuda

#ifndef MOE_CORE_CUDA_WARP_REDUCE_CUH_
#define MOE_CORE_CUDA_WARP_REDUCE_CUH_

// Reductions across the 32 lanes of a full warp (butterfly shuffles): every
// lane ends with the same result, since each step combines the same two
// values in both partner lanes.

namespace moe::cuda {

inline constexpr unsigned kFullWarpMask = 0xffffffffu;

template <typename T>
__device__ inline T WarpSum(T value) {
  for (int offset = 16; offset > 0; offset /= 2)
    value += __shfl_xor_sync(kFullWarpMask, value, offset);
  return value;
}

__device__ inline float WarpMax(float value) {
  for (int offset = 16; offset > 0; offset /= 2)
    value = fmaxf(value, __shfl_xor_sync(kFullWarpMask, value, offset));
  return value;
}

// The better of two candidates: the larger value, the lower index on ties
// (a total order, so lanes agree).
__device__ inline void MergeArgmax(float other, int other_id, float& best,
                                   int& best_id) {
  if (other > best || (other == best && other_id < best_id)) {
    best = other;
    best_id = other_id;
  }
}

// (best, best_id) becomes the warp's best candidate in every lane.
__device__ inline void WarpArgmax(float& best, int& best_id) {
  for (int offset = 16; offset > 0; offset /= 2) {
    const float other = __shfl_xor_sync(kFullWarpMask, best, offset);
    const int other_id = __shfl_xor_sync(kFullWarpMask, best_id, offset);
    MergeArgmax(other, other_id, best, best_id);
  }
}

}  // namespace moe::cuda

#endif  // MOE_CORE_CUDA_WARP_REDUCE_CUH_

// One Skywork-MoE layer on one GPU (hidden 4608, 36 heads of 128, intermediate
// 12288, 16 FP8 experts, top-2): its attention part (the router's RouterLayer:
// RMSNorm, BF16 q/k/v/o products, rotary embedding, paged BF16 KV cache,
// attention, gate and top-2) at a context of 2048 per sequence, and its expert
// part, beside the device's own ceilings measured in the same run:
// device-to-device copy bandwidth and the FP8 and BF16 matmul rates through
// cuBLASLt. Prints tables; see docs/BENCHMARKS.md.
//
// usage: moe_layer_benchmark [--quick]   (--quick: small shapes, a smoke run)
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/cuda/cuda_check.h"
#include "core/cuda/device_buffer.h"
#include "core/cuda/device_info.h"
#include "core/cuda/lt_matmul.h"
#include "engine/cuda/paged_kv.h"
#include "engine/cuda/router_layer.h"
#include "expert_worker/cuda/gpu_experts.h"

namespace moe::cuda {
namespace {

struct Shape {
  int64_t hidden, intermediate;
  int experts;
  int heads, head_dim, context, block_size;
  std::vector<int64_t> batches;
  int64_t copy_bytes, gemm_size;
};

void Check(bool ok, const std::string& what) {
  if (!ok) {
    std::fprintf(stderr, "moe_layer_benchmark: %s\n", what.c_str());
    std::exit(1);
  }
}

void CheckCuda(cudaError_t status, const char* what) {
  Check(status == cudaSuccess, CudaErrorText(status, what));
}

// Median seconds of `reps` runs of `run` (which must leave the device idle)
// after `warmup` runs.
template <typename Run>
double MedianSeconds(int warmup, int reps, Run run) {
  for (int i = 0; i < warmup; ++i) run();
  std::vector<double> times;
  for (int i = 0; i < reps; ++i) {
    const auto start = std::chrono::steady_clock::now();
    run();
    times.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// Random bytes that are finite E4M3 values (not 0x7F/0xFF, the NaNs) and,
// read as BF16 pairs, finite too (the high byte's exponent bits never all
// set).
std::vector<uint8_t> RandomBytes(size_t count, uint64_t seed) {
  std::vector<uint8_t> bytes(count);
  uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < count; ++i) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    bytes[i] = static_cast<uint8_t>(state) & 0x3F;  // |value| < 2, finite
    if (state & 0x100) bytes[i] |= 0x80;            // sign
  }
  return bytes;
}

double CopyBandwidth(int64_t bytes) {
  DeviceBuffer src, dst;
  CheckCuda(src.Reserve(bytes), "copy source");
  CheckCuda(dst.Reserve(bytes), "copy destination");
  CheckCuda(cudaMemset(src.get(), 1, bytes), "memset");
  const double seconds = MedianSeconds(3, 20, [&] {
    CheckCuda(cudaMemcpy(dst.get(), src.get(), bytes, cudaMemcpyDeviceToDevice),
              "copy");
    CheckCuda(cudaDeviceSynchronize(), "copy");
  });
  return 2.0 * bytes / seconds;  // read + written
}

// Rows in from and results out to pageable host memory, as GpuExperts
// copies them on every call: part of the MoE time, but not HBM traffic.
double HostCopySeconds(int64_t bytes) {
  DeviceBuffer device;
  CheckCuda(device.Reserve(bytes), "host copy buffer");
  std::vector<uint8_t> host(bytes, 1);
  return MedianSeconds(3, 20, [&] {
    CheckCuda(
        cudaMemcpy(device.get(), host.data(), bytes, cudaMemcpyHostToDevice),
        "copy in");
    CheckCuda(
        cudaMemcpy(host.data(), device.get(), bytes, cudaMemcpyDeviceToHost),
        "copy out");
  });
}

double MatmulRate(LtMatmul& matmul, GemmInput input, int64_t size) {
  const int64_t element = input == GemmInput::kFp8E4M3 ? 1 : 2;
  const std::vector<uint8_t> host = RandomBytes(size * size * element, 7);
  DeviceBuffer a, b, d;
  CheckCuda(a.Reserve(host.size()), "matmul a");
  CheckCuda(b.Reserve(host.size()), "matmul b");
  CheckCuda(d.Reserve(size * size * 4), "matmul d");
  CheckCuda(
      cudaMemcpy(a.get(), host.data(), host.size(), cudaMemcpyHostToDevice),
      "upload");
  CheckCuda(
      cudaMemcpy(b.get(), host.data(), host.size(), cudaMemcpyHostToDevice),
      "upload");
  std::string error;
  const double seconds = MedianSeconds(3, 10, [&] {
    Check(matmul.Run(input, a.get(), b.get(), d.get<float>(), size, size, size,
                     nullptr, &error),
          error);
    CheckCuda(cudaDeviceSynchronize(), "matmul");
  });
  return 2.0 * size * size * size / seconds;
}

// Top-2 of `experts` per row, distinct, weights summing to 1.
std::vector<ExpertRoute> UniformRoutes(int64_t rows, int experts,
                                       std::mt19937& engine) {
  std::vector<ExpertRoute> routes;
  for (int64_t r = 0; r < rows; ++r) {
    const int first = int(engine() % experts);
    const int second = (first + 1 + int(engine() % (experts - 1))) % experts;
    routes.push_back({int32_t(r), first, 0.6f});
    routes.push_back({int32_t(r), second, 0.4f});
  }
  return routes;
}

template <typename T>
T* Upload(DeviceBuffer& buffer, const std::vector<T>& host) {
  CheckCuda(buffer.Reserve(std::max<size_t>(host.size() * sizeof(T), 4)),
            "upload");
  CheckCuda(cudaMemcpy(buffer.get(), host.data(), host.size() * sizeof(T),
                       cudaMemcpyHostToDevice),
            "upload");
  return buffer.get<T>();
}

// The router's part of the layer (RouterLayer: RMSNorm, BF16 q/k/v/o
// products, rotary embedding, paged KV cache, attention, residual,
// post-attention RMSNorm, gate and top-2) for `tokens` rows: `tokens` decode
// rows of as many sequences at position context - 1, or (prefill) one
// sequence's first `tokens` positions. The KV pools hold a non-zero constant
// where no row wrote (the speed does not depend on the values).
void TimeAttention(const Shape& shape, int64_t tokens, bool prefill,
                   double bandwidth, double bf16_rate) {
  const int64_t h = shape.hidden, rows = tokens;
  const int64_t sequences = prefill ? 1 : tokens;
  const int64_t positions = prefill ? tokens : shape.context;
  const int64_t blocks_per_sequence =
      (positions + shape.block_size - 1) / shape.block_size;
  PagedKvLayout layout{int(sequences * blocks_per_sequence), shape.block_size,
                       shape.heads, shape.head_dim};
  std::vector<int32_t> row_sequences(rows), row_positions(rows),
      offsets(sequences), tables(sequences * blocks_per_sequence);
  for (int64_t r = 0; r < rows; ++r) {
    row_sequences[r] = prefill ? 0 : int32_t(r);
    row_positions[r] = prefill ? int32_t(r) : int32_t(positions - 1);
  }
  for (int64_t s = 0; s < sequences; ++s) offsets[s] = s * blocks_per_sequence;
  for (size_t b = 0; b < tables.size(); ++b) tables[b] = int32_t(b);
  DeviceBuffer meta[4], x, norms, weights, expert_input, expert_ids,
      expert_weights, key_pool, value_pool;
  const PagedBatch batch{int(rows), Upload(meta[0], row_sequences),
                         Upload(meta[1], row_positions),
                         Upload(meta[2], offsets), Upload(meta[3], tables)};
  const int64_t pool_bytes = layout.PoolElements() * 2;
  CheckCuda(key_pool.Reserve(pool_bytes), "key pool");
  CheckCuda(value_pool.Reserve(pool_bytes), "value pool");
  CheckCuda(cudaMemset(key_pool.get(), 0x3C, pool_bytes), "key pool");
  CheckCuda(cudaMemset(value_pool.get(), 0x3C, pool_bytes), "value pool");
  std::vector<float> host_x(rows * h);
  std::mt19937 engine(11);
  std::normal_distribution<float> normal;
  for (float& value : host_x) value = normal(engine);
  Upload(x, host_x);
  Upload(norms, RandomBytes(2 * h * 2, 3));
  // q, k, v, o [h, h] and the gate [experts, h], BF16.
  Upload(weights, RandomBytes((4 * h + shape.experts) * h * 2, 4));
  CheckCuda(expert_input.Reserve(rows * h * 4), "expert input");
  CheckCuda(expert_ids.Reserve(rows * 2 * 4), "expert ids");
  CheckCuda(expert_weights.Reserve(rows * 2 * 4), "expert weights");

  RouterLayerShape layer_shape;
  layer_shape.hidden = int(h);
  layer_shape.heads = layer_shape.kv_heads = shape.heads;
  layer_shape.head_dim = shape.head_dim;
  layer_shape.gating = {shape.experts, 2, /*use_logits_norm=*/true, 1.0f};
  std::string error;
  auto layer = RouterLayer::Create(layer_shape, int(rows), &error);
  Check(layer != nullptr, error);
  const auto* w = weights.get<__nv_bfloat16>();
  const RouterLayerWeights layer_weights{norms.get<__nv_bfloat16>(),
                                         w,
                                         w + h * h,
                                         w + 2 * h * h,
                                         w + 3 * h * h,
                                         norms.get<__nv_bfloat16>() + h,
                                         w + 4 * h * h};
  const RoutedRows routed{expert_input.get<float>(), expert_ids.get<int32_t>(),
                          expert_weights.get<float>()};
  const double seconds = MedianSeconds(3, 20, [&] {
    // The residual rows drift from run to run; the speed does not depend
    // on their values.
    Check(layer->AttendAndRoute(layer_weights, x.get<float>(), batch, layout,
                                key_pool.get<__nv_bfloat16>(),
                                value_pool.get<__nv_bfloat16>(), routed,
                                nullptr, &error),
          error);
    CheckCuda(cudaDeviceSynchronize(), "attention part");
  });
  // Keys and values read: every row reads its sequence's positions [0, p];
  // a prefill's rows share them, which its blocks' reuse in cache serves.
  double score_positions = 0;
  for (int64_t r = 0; r < rows; ++r) score_positions += row_positions[r] + 1;
  const double kv_positions = prefill ? double(positions) : score_positions;
  const double kv_row_bytes = 2.0 * shape.heads * shape.head_dim * 2;
  const double bytes =
      (4.0 * h + shape.experts) * h * 2 + kv_positions * kv_row_bytes;
  const double flops = 2.0 * (4 * h + shape.experts) * h * rows +
                       4.0 * score_positions * shape.heads * shape.head_dim;
  std::printf("%8s %8lld %10.3f %10.0f %10.2f %10.1f %12.2f\n",
              prefill ? "prefill" : "decode", static_cast<long long>(tokens),
              seconds * 1e3, bytes / seconds / 1e9,
              seconds / (bytes / bandwidth), flops / seconds / 1e12,
              seconds / (flops / bf16_rate));
}

void Run(const Shape& shape) {
  cudaDeviceProp properties{};
  CheckCuda(cudaGetDeviceProperties(&properties, 0), "device properties");
  std::printf("device: %s, %d SMs, %.1f GiB\n", properties.name,
              properties.multiProcessorCount,
              properties.totalGlobalMem / double(1 << 30));

  const double bandwidth = CopyBandwidth(shape.copy_bytes);
  std::string error;
  auto matmul = LtMatmul::Create(&error);
  Check(matmul != nullptr, error);
  const bool fp8 = properties.major * 10 + properties.minor >= 89;
  const double fp8_rate =
      fp8 ? MatmulRate(*matmul, GemmInput::kFp8E4M3, shape.gemm_size) : 0;
  const double bf16_rate =
      MatmulRate(*matmul, GemmInput::kBf16, shape.gemm_size);
  std::printf(
      "copy bandwidth %.0f GB/s (read + written; the bound below), "
      "cuBLASLt FP8->FP32 %.0f TFLOP/s, BF16->FP32 %.0f TFLOP/s (%lld^3; "
      "FP8 with FAST_ACCUM off, as the experts run)\n",
      bandwidth / 1e9, fp8_rate / 1e12, bf16_rate / 1e12,
      static_cast<long long>(shape.gemm_size));

  std::printf(
      "\nAttention part, with the gate (BF16 products, BF16 paged KV cache, "
      "context %d per decode sequence)\n",
      shape.context);
  std::printf("%8s %8s %10s %10s %10s %10s %12s\n", "kind", "tokens", "time ms",
              "GB/s", "x bw bound", "TFLOP/s", "x FLOP bound");
  for (int64_t tokens : shape.batches) {
    TimeAttention(shape, tokens, tokens > 256, bandwidth, bf16_rate);
  }

  auto experts = GpuExperts::Create(
      {0, shape.hidden, shape.intermediate, /*allow_fp8=*/true}, &error);
  Check(experts != nullptr, error);
  const int64_t h = shape.hidden, i = shape.intermediate;
  for (int e = 0; e < shape.experts; ++e) {
    const std::vector<uint8_t> w13 = RandomBytes(2 * i * h, 100 + e);
    const std::vector<uint8_t> w2 = RandomBytes(h * i, 200 + e);
    const std::vector<float> s13(i, 1.0f / 64), s2(h, 1.0f / 64);
    const HostExpert host{
        {HostFormat::kFp8E4M3, i, h, w13.data(), s13.data()},
        {HostFormat::kFp8E4M3, i, h, w13.data() + i * h, s13.data()},
        {HostFormat::kFp8E4M3, h, i, w2.data(), s2.data()}};
    Check(experts->Add(0, e, host, &error), error);
  }
  const double rate = experts->fp8() ? fp8_rate : bf16_rate;
  std::printf(
      "\nMoE part (%s products, %d experts of %.0f MB, top-2). The time "
      "includes copying rows in and results out of pageable host memory "
      "(host ms, timed apart); GB/s and the bound ratios count the expert "
      "weights only, over the time less those copies\n",
      experts->fp8() ? "FP8" : "BF16", shape.experts,
      experts->ExpertBytes() / 1e6);
  std::printf("%8s %8s %10s %10s %10s %10s %10s %12s\n", "tokens", "experts",
              "time ms", "host ms", "GB/s", "x bw bound", "TFLOP/s",
              "x FLOP bound");
  std::mt19937 engine(5);
  for (int64_t tokens : shape.batches) {
    std::vector<float> x(tokens * h), out(tokens * h);
    std::normal_distribution<float> normal;
    for (float& v : x) v = normal(engine);
    const std::vector<ExpertRoute> routes =
        UniformRoutes(tokens, shape.experts, engine);
    std::set<int> touched;
    for (const ExpertRoute& route : routes) touched.insert(route.expert);
    const double seconds = MedianSeconds(3, 20, [&] {
      Check(experts->Compute(0, x.data(), tokens, routes, out.data(), &error),
            error);
    });
    const double host = HostCopySeconds(tokens * h * 4);
    const double device = std::max(seconds - host, 1e-9);
    const double bytes = double(touched.size()) * experts->ExpertBytes();
    const double flops = 2.0 * 3 * h * i * routes.size();
    std::printf("%8lld %8zu %10.3f %10.3f %10.0f %10.2f %10.1f %12.2f\n",
                static_cast<long long>(tokens), touched.size(), seconds * 1e3,
                host * 1e3, bytes / device / 1e9, device / (bytes / bandwidth),
                flops / device / 1e12, device / (flops / rate));
  }
}

}  // namespace
}  // namespace moe::cuda

int main(int argc, char** argv) {
  // Line by line, so that a run stopped at a time limit keeps its rows.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const bool quick = argc == 2 && std::strcmp(argv[1], "--quick") == 0;
  if (argc > 2 || (argc == 2 && !quick)) {
    std::fprintf(stderr, "usage: moe_layer_benchmark [--quick]\n");
    return 2;
  }
  if (moe::cuda::DeviceCount() == 0) {
    std::printf("moe_layer_benchmark: no CUDA device on this machine\n");
    return 0;
  }
  const moe::cuda::Shape skywork{.hidden = 4608,
                                 .intermediate = 12288,
                                 .experts = 16,
                                 .heads = 36,
                                 .head_dim = 128,
                                 .context = 2048,
                                 .block_size = 16,
                                 .batches = {1, 16, 64, 256, 2048},
                                 .copy_bytes = int64_t{2} << 30,
                                 .gemm_size = 16384};
  const moe::cuda::Shape smoke{.hidden = 256,
                               .intermediate = 512,
                               .experts = 4,
                               .heads = 4,
                               .head_dim = 64,
                               .context = 128,
                               .block_size = 16,
                               .batches = {1, 16, 512},
                               .copy_bytes = int64_t{64} << 20,
                               .gemm_size = 1024};
  moe::cuda::Run(quick ? smoke : skywork);
  return 0;
}

// The expert FFN (SwiGLU from FP8 weights) at decode and small prefill
// batches, at Skywork-like and benchmark-model shapes.
#include <benchmark/benchmark.h>

#include <random>

#include "core/kernels/expert_ffn.h"
#include "core/model/quantize.h"

namespace moe {
namespace {

struct RandomExpertLayer {
  RandomExpertLayer(int experts, int64_t hidden, int64_t inter) {
    std::mt19937 generator(1);
    std::normal_distribution<float> normal(0.0f, 0.05f);
    layer.experts.resize(experts);
    for (ExpertWeights& expert : layer.experts) {
      for (auto [weight, rows, cols] :
           {std::tuple{&expert.w1, inter, hidden},
            std::tuple{&expert.w3, inter, hidden},
            std::tuple{&expert.w2, hidden, inter}}) {
        std::vector<float> values(rows * cols);
        for (float& v : values) v = normal(generator);
        Fp8Matrix fp8 =
            QuantizeFp8(values, rows, cols, ScaleGranularity::kPerChannel);
        storage.push_back(std::move(fp8.codes));
        *weight = LinearWeight{DType::kF8E4M3, rows, cols,
                               storage.back().data(), std::move(fp8.scales)};
      }
      expert.loaded = true;
    }
  }
  LayerWeights layer;
  std::vector<std::vector<uint8_t>> storage;
};

// Args: batch rows, hidden, intermediate. 16 experts, top-2 routing spread
// evenly, as a decode step of `batch` sequences through one MoE layer.
void BM_ExpertFfnFp8(benchmark::State& state) {
  const int64_t batch = state.range(0);
  const int64_t hidden = state.range(1);
  const int64_t inter = state.range(2);
  const int experts = 16;
  static std::map<std::pair<int64_t, int64_t>,
                  std::unique_ptr<RandomExpertLayer>>
      layers;
  auto& layer = layers[{hidden, inter}];
  if (!layer)
    layer = std::make_unique<RandomExpertLayer>(experts, hidden, inter);
  std::vector<float> x(batch * hidden, 0.5f), out(batch * hidden);
  std::vector<ExpertAssignment> assignments;
  for (int64_t r = 0; r < batch; ++r) {
    assignments.push_back({static_cast<int32_t>(r),
                           static_cast<int32_t>((2 * r) % experts), 0.6f});
    assignments.push_back({static_cast<int32_t>(r),
                           static_cast<int32_t>((2 * r + 1) % experts), 0.4f});
  }
  ThreadPool pool;
  for (auto _ : state) {
    absl::Status status = ComputeExperts(layer->layer, 0, x.data(), batch,
                                         hidden, assignments, out.data(), pool);
    if (!status.ok())
      state.SkipWithError(std::string(status.message()).c_str());
    benchmark::DoNotOptimize(out.data());
  }
  // Bytes of expert weights read per call: each distinct expert once.
  const int64_t distinct = std::min<int64_t>(experts, 2 * batch);
  const double bytes = static_cast<double>(distinct) * 3 * hidden * inter;
  state.counters["weight_GB/s"] =
      benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * 3 * hidden * inter * 2 * batch,
                         benchmark::Counter::kIsIterationInvariantRate);
}

BENCHMARK(BM_ExpertFfnFp8)
    ->ArgsProduct({{1, 8, 64}, {1024}, {2816}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace
}  // namespace moe

BENCHMARK_MAIN();

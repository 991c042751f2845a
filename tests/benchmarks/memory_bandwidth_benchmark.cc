// Read bandwidth from memory with all cores: the bound for decode, which
// reads every active weight once per token. The buffer (2 GiB) is far larger
// than the last-level cache.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "core/util/thread_pool.h"

namespace moe {
namespace {

void BM_ReadBandwidth(benchmark::State& state) {
  const size_t bytes = size_t{2} << 30;
  static std::vector<uint64_t> buffer(bytes / 8, 1);
  ThreadPool pool;
  const int64_t words = static_cast<int64_t>(buffer.size());
  std::vector<uint64_t> sums(pool.num_threads());
  for (auto _ : state) {
    pool.ParallelFor(pool.num_threads(), [&](int64_t begin, int64_t) {
      const int64_t first = words * begin / pool.num_threads();
      const int64_t last = words * (begin + 1) / pool.num_threads();
      uint64_t a = 0, b = 0, c = 0, d = 0;
      for (int64_t i = first; i + 4 <= last; i += 4) {
        a += buffer[i];
        b += buffer[i + 1];
        c += buffer[i + 2];
        d += buffer[i + 3];
      }
      sums[begin] = a + b + c + d;
    });
    benchmark::DoNotOptimize(sums.data());
  }
  state.counters["GB/s"] =
      benchmark::Counter(static_cast<double>(bytes),
                         benchmark::Counter::kIsIterationInvariantRate);
}

BENCHMARK(BM_ReadBandwidth)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(2.0);

}  // namespace
}  // namespace moe

BENCHMARK_MAIN();

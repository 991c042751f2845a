#include "core/kernels/linear.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/kernels/linear_kernels.h"

namespace moe {
namespace {

using RowsKernel = void (*)(const LinearWeight&, int64_t, int64_t, const float*,
                            int64_t, float*);

// MOE_KERNELS=avx2|generic picks a narrower kernel than the CPU supports
// (to compare them or to test the fallbacks).
RowsKernel SelectKernel() {
  static const RowsKernel kernel = [] {
    const char* forced = std::getenv("MOE_KERNELS");
    const std::string choice = forced != nullptr ? forced : "";
    if (choice != "generic" && choice != "avx2" &&
        internal::CpuHasAvx512Kernels()) {
      return internal::LinearRowsAvx512;
    }
    if (choice != "generic" && internal::CpuHasAvx2Kernels()) {
      return internal::LinearRowsAvx2;
    }
    return internal::LinearRowsGeneric;
  }();
  return kernel;
}

// Work handed out per grab, in weight bytes times input groups (the kernels
// decode each weight once per 4 inputs). For decode that is ~256 KB of
// weights: long contiguous runs keep the memory streams of the two threads
// apart (measured: 16 rows of 1 KB per grab ran decode 35% slower than 256).
// Batched products get proportionally fewer rows, so their few large jobs
// still split evenly across threads.
constexpr int64_t kWorkPerTask = 256 << 10;

// Rows per task of a job, a multiple of 4.
int64_t RowsPerTask(const LinearJob& job) {
  const int64_t row_bytes =
      job.weight->cols * static_cast<int64_t>(DTypeSize(job.weight->dtype));
  const int64_t input_groups = std::max<int64_t>(1, (job.n + 3) / 4);
  return std::max<int64_t>(
      4, kWorkPerTask / std::max<int64_t>(row_bytes * input_groups, 1) / 4 * 4);
}

}  // namespace

void RunLinear(std::span<const LinearJob> jobs, ThreadPool& pool) {
  std::vector<int64_t> first_task(jobs.size() + 1, 0);
  for (size_t j = 0; j < jobs.size(); ++j) {
    const int64_t rows = jobs[j].n > 0 ? jobs[j].weight->rows : 0;
    const int64_t per_task = RowsPerTask(jobs[j]);
    first_task[j + 1] = first_task[j] + (rows + per_task - 1) / per_task;
  }
  const int64_t total = first_task.back();
  if (total == 0) return;
  const RowsKernel kernel = SelectKernel();
  std::atomic<int64_t> next{0};
  pool.ParallelFor(
      std::min<int64_t>(pool.num_threads(), total), [&](int64_t, int64_t) {
        for (int64_t task = next++; task < total; task = next++) {
          const size_t j = static_cast<size_t>(
              std::upper_bound(first_task.begin(), first_task.end(), task) -
              first_task.begin() - 1);
          const LinearJob& job = jobs[j];
          const int64_t per_task = RowsPerTask(job);
          const int64_t begin = (task - first_task[j]) * per_task;
          const int64_t end = std::min(begin + per_task, job.weight->rows);
          kernel(*job.weight, begin, end, job.x, job.n, job.y);
        }
      });
}

void Linear(const LinearWeight& weight, const float* x, int64_t n, float* y,
            ThreadPool& pool) {
  const LinearJob job{&weight, x, n, y};
  RunLinear({&job, 1}, pool);
}

}  // namespace moe

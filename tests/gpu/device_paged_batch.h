#ifndef MOE_TESTS_GPU_DEVICE_PAGED_BATCH_H_
#define MOE_TESTS_GPU_DEVICE_PAGED_BATCH_H_

#include <cstdint>
#include <vector>

#include "engine/cuda/paged_kv.h"
#include "tests/gpu/gpu_test_util.h"

namespace moe::cuda::testing {

// A PagedBatch whose arrays are copied to the device and live as long as
// this object.
class DevicePagedBatch {
 public:
  DevicePagedBatch(const std::vector<int32_t>& row_sequences,
                   const std::vector<int32_t>& row_positions,
                   const std::vector<int32_t>& block_table_offsets,
                   const std::vector<int32_t>& block_tables)
      : sequences_(row_sequences),
        positions_(row_positions),
        offsets_(block_table_offsets),
        tables_(block_tables) {
    batch_.rows = static_cast<int>(row_sequences.size());
    batch_.row_sequences = sequences_.get();
    batch_.row_positions = positions_.get();
    batch_.block_table_offsets = offsets_.get();
    batch_.block_tables = tables_.get();
  }

  const PagedBatch& batch() const { return batch_; }

 private:
  DeviceArray<int32_t> sequences_, positions_, offsets_, tables_;
  PagedBatch batch_;
};

}  // namespace moe::cuda::testing

#endif  // MOE_TESTS_GPU_DEVICE_PAGED_BATCH_H_

#include "expert_worker/cuda/gpu_experts.h"

#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/cuda/cuda_check.h"
#include "expert_worker/cuda/expert_kernels.h"

namespace moe::cuda {
namespace {

constexpr int64_t kAlignment = 256;  // of every array inside an allocation

int64_t AlignUp(int64_t bytes) {
  return (bytes + kAlignment - 1) / kAlignment * kAlignment;
}

int64_t ElementBytes(GemmInput format) {
  return format == GemmInput::kFp8E4M3 ? 1 : 2;
}

std::string ExpertName(int layer, int expert) {
  return "layer " + std::to_string(layer) + " expert " + std::to_string(expert);
}

// Row `row` of a host weight as real values (its scale applied).
void DecodeRow(const HostWeight& weight, int64_t row, float* out) {
  const float scale =
      weight.row_scales != nullptr ? weight.row_scales[row] : 1.0f;
  const int64_t cols = weight.cols;
  switch (weight.format) {
    case HostFormat::kFp8E4M3: {
      const auto* data = static_cast<const __nv_fp8_e4m3*>(weight.data);
      for (int64_t c = 0; c < cols; ++c)
        out[c] = static_cast<float>(data[row * cols + c]) * scale;
      break;
    }
    case HostFormat::kBf16: {
      const auto* data = static_cast<const __nv_bfloat16*>(weight.data);
      for (int64_t c = 0; c < cols; ++c)
        out[c] = __bfloat162float(data[row * cols + c]) * scale;
      break;
    }
    case HostFormat::kFloat32: {
      const auto* data = static_cast<const float*>(weight.data);
      for (int64_t c = 0; c < cols; ++c) out[c] = data[row * cols + c] * scale;
      break;
    }
  }
}

}  // namespace

// One expert's device copy: [w1; w3] as one [2I, H] matrix (one product
// computes both), w2 [H, I], and for FP8 their per-channel scales.
struct GpuExperts::DeviceExpert {
  DeviceBuffer memory;
  void* w13 = nullptr;
  void* w2 = nullptr;
  float* w13_scales = nullptr;  // [2I]; null for BF16
  float* w2_scales = nullptr;   // [H]; null for BF16
};

// A layer's routes grouped by expert (see expert_kernels.h).
struct GpuExperts::Slots {
  struct Group {
    const DeviceExpert* expert;
    int64_t offset;  // first slot
    int64_t count;
  };
  std::vector<Group> groups;
  int64_t count = 0;  // all slots
  // Uploaded in one copy: per-slot scale pointers, then the int32 arrays,
  // then the weights.
  std::vector<uint8_t> meta;
  int64_t src_rows_at = 0, row_offsets_at = 0, row_slots_at = 0, weights_at = 0;
};

GpuExperts::GpuExperts(const Options& options, GemmInput format)
    : options_(options), format_(format) {}

std::unique_ptr<GpuExperts> GpuExperts::Create(const Options& options,
                                               std::string* error) {
  if (options.hidden <= 0 || options.intermediate <= 0) {
    *error = "hidden and intermediate sizes must be positive";
    return nullptr;
  }
  cudaError_t status = cudaSetDevice(options.device);
  cudaDeviceProp properties{};
  if (status == cudaSuccess)
    status = cudaGetDeviceProperties(&properties, options.device);
  if (status != cudaSuccess) {
    *error = CudaErrorText(
        status, ("device " + std::to_string(options.device)).c_str());
    return nullptr;
  }
  // FP8 products need 16-byte rows; BF16 ones 16-byte rows of 2-byte values.
  const bool fp8_shape =
      options.hidden % 16 == 0 && options.intermediate % 16 == 0;
  const bool fp8_device = properties.major * 10 + properties.minor >= 89;
  const GemmInput format = options.allow_fp8 && fp8_device && fp8_shape
                               ? GemmInput::kFp8E4M3
                               : GemmInput::kBf16;
  if (options.hidden % 8 != 0 || options.intermediate % 8 != 0) {
    *error =
        "GPU experts need hidden and intermediate sizes divisible by 8 "
        "(hidden " +
        std::to_string(options.hidden) + ", intermediate " +
        std::to_string(options.intermediate) + ")";
    return nullptr;
  }
  std::unique_ptr<GpuExperts> experts(new GpuExperts(options, format));
  status = cudaStreamCreateWithFlags(&experts->stream_, cudaStreamNonBlocking);
  if (status != cudaSuccess) {
    *error = CudaErrorText(status, "cudaStreamCreate");
    return nullptr;
  }
  experts->matmul_ = LtMatmul::Create(error);
  if (experts->matmul_ == nullptr) return nullptr;
  return experts;
}

GpuExperts::~GpuExperts() {
  cudaSetDevice(options_.device);
  if (stream_ != nullptr) cudaStreamSynchronize(stream_);
  experts_.clear();
  matmul_.reset();
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
}

int64_t GpuExperts::ExpertBytes() const {
  const int64_t h = options_.hidden, i = options_.intermediate;
  const int64_t element = ElementBytes(format_);
  int64_t bytes = AlignUp(2 * i * h * element) + AlignUp(h * i * element);
  if (fp8()) bytes += AlignUp(2 * i * 4) + AlignUp(h * 4);
  return bytes;
}

int64_t GpuExperts::BytesHeld() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int64_t>(experts_.size()) * ExpertBytes();
}

bool GpuExperts::Holds(int layer, int expert) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return experts_.count({layer, expert}) > 0;
}

bool GpuExperts::CheckWeight(const HostWeight& weight, int64_t rows,
                             int64_t cols, const char* name,
                             std::string* error) const {
  if (weight.data == nullptr || weight.rows != rows || weight.cols != cols) {
    *error = std::string(name) + ": expected [" + std::to_string(rows) + ", " +
             std::to_string(cols) + "], got [" + std::to_string(weight.rows) +
             ", " + std::to_string(weight.cols) + "]";
    return false;
  }
  return true;
}

// Writes `weight` in the device format to `data` (and, for FP8, its
// per-row scales to `scales`). FP8 bytes are copied as they are; anything
// else is quantized per row (FP8) or rounded (BF16) on the host.
bool GpuExperts::UploadMatrix(const HostWeight& weight, uint8_t* data,
                              float* scales, std::string* error) const {
  const int64_t rows = weight.rows, cols = weight.cols;
  std::vector<float> row_scales(rows, 1.0f);
  cudaError_t status = cudaSuccess;
  if (fp8() && weight.format == HostFormat::kFp8E4M3) {
    if (weight.row_scales != nullptr)
      std::copy(weight.row_scales, weight.row_scales + rows,
                row_scales.begin());
    status = cudaMemcpy(data, weight.data, rows * cols, cudaMemcpyHostToDevice);
  } else {
    std::vector<uint8_t> converted(rows * cols * ElementBytes(format_));
    std::vector<float> row(cols);
    for (int64_t r = 0; r < rows; ++r) {
      DecodeRow(weight, r, row.data());
      if (fp8()) {
        float amax = 0;
        for (float v : row) amax = std::max(amax, std::fabs(v));
        row_scales[r] = amax > 0 ? amax / kFp8E4M3Max : 1.0f;
        auto* out = reinterpret_cast<__nv_fp8_e4m3*>(converted.data());
        for (int64_t c = 0; c < cols; ++c)
          out[r * cols + c] = __nv_fp8_e4m3(row[c] / row_scales[r]);
      } else {
        auto* out = reinterpret_cast<__nv_bfloat16*>(converted.data());
        for (int64_t c = 0; c < cols; ++c)
          out[r * cols + c] = __float2bfloat16(row[c]);
      }
    }
    status = cudaMemcpy(data, converted.data(), converted.size(),
                        cudaMemcpyHostToDevice);
  }
  if (status == cudaSuccess && scales != nullptr) {
    status = cudaMemcpy(scales, row_scales.data(), rows * sizeof(float),
                        cudaMemcpyHostToDevice);
  }
  if (status != cudaSuccess) {
    *error = CudaErrorText(status, "copying expert weights to the device");
    return false;
  }
  return true;
}

bool GpuExperts::Add(int layer, int expert, const HostExpert& weights,
                     std::string* error) {
  const int64_t h = options_.hidden, i = options_.intermediate;
  if (!CheckWeight(weights.w1, i, h, "w1", error) ||
      !CheckWeight(weights.w3, i, h, "w3", error) ||
      !CheckWeight(weights.w2, h, i, "w2", error)) {
    *error = ExpertName(layer, expert) + " " + *error;
    return false;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  cudaSetDevice(options_.device);
  size_t free_bytes = 0, total_bytes = 0;
  cudaError_t status = cudaMemGetInfo(&free_bytes, &total_bytes);
  const int64_t needed = ExpertBytes() + kReserveBytes;
  if (status == cudaSuccess && static_cast<int64_t>(free_bytes) < needed) {
    *error = ExpertName(layer, expert) + " needs " + std::to_string(needed) +
             " bytes (with " + std::to_string(kReserveBytes) +
             " kept for compute) but device " +
             std::to_string(options_.device) + " has " +
             std::to_string(free_bytes) + " free";
    return false;
  }
  auto copy = std::make_unique<DeviceExpert>();
  if (status == cudaSuccess) status = copy->memory.Reserve(ExpertBytes());
  if (status != cudaSuccess) {
    *error = CudaErrorText(status, ExpertName(layer, expert).c_str());
    return false;
  }
  const int64_t element = ElementBytes(format_);
  auto* base = copy->memory.get<uint8_t>();
  copy->w13 = base;
  copy->w2 = base + AlignUp(2 * i * h * element);
  if (fp8()) {
    copy->w13_scales = reinterpret_cast<float*>(
        static_cast<uint8_t*>(copy->w2) + AlignUp(h * i * element));
    copy->w2_scales = reinterpret_cast<float*>(
        reinterpret_cast<uint8_t*>(copy->w13_scales) + AlignUp(2 * i * 4));
  }
  uint8_t* w3_data = base + i * h * element;
  float* w3_scales = fp8() ? copy->w13_scales + i : nullptr;
  if (!UploadMatrix(weights.w1, base, copy->w13_scales, error) ||
      !UploadMatrix(weights.w3, w3_data, w3_scales, error) ||
      !UploadMatrix(weights.w2, static_cast<uint8_t*>(copy->w2),
                    copy->w2_scales, error)) {
    *error = ExpertName(layer, expert) + ": " + *error;
    return false;
  }
  experts_[{layer, expert}] = std::move(copy);
  return true;
}

void GpuExperts::Remove(int layer, int expert) {
  std::lock_guard<std::mutex> lock(mutex_);
  cudaSetDevice(options_.device);
  experts_.erase({layer, expert});
}

bool GpuExperts::RunProducts(const Slots& slots, std::string* error) {
  const int64_t h = options_.hidden, i = options_.intermediate;
  const int64_t element = ElementBytes(format_);
  const uint8_t* meta = meta_.get<uint8_t>();
  const auto* w13_scales = reinterpret_cast<const float* const*>(meta);
  const auto* w2_scales = w13_scales + slots.count;
  const auto* src_rows =
      reinterpret_cast<const int32_t*>(meta + slots.src_rows_at);
  cudaError_t status =
      QuantizeRows(format_, x_.get<float>(), src_rows, slots.count, h,
                   x_q_.get(), x_scales_.get<float>(), stream_);
  for (const Slots::Group& group : slots.groups) {
    if (status != cudaSuccess) break;
    if (!matmul_->Run(format_, group.expert->w13,
                      x_q_.get<uint8_t>() + group.offset * h * element,
                      g13_.get<float>() + group.offset * 2 * i, 2 * i,
                      group.count, h, stream_, error)) {
      return false;
    }
  }
  if (status == cudaSuccess) {
    status = SwiGluQuantize(format_, g13_.get<float>(), x_scales_.get<float>(),
                            w13_scales, slots.count, i, h_q_.get(),
                            h_scales_.get<float>(), stream_);
  }
  for (const Slots::Group& group : slots.groups) {
    if (status != cudaSuccess) break;
    if (!matmul_->Run(format_, group.expert->w2,
                      h_q_.get<uint8_t>() + group.offset * i * element,
                      y_.get<float>() + group.offset * h, h, group.count, i,
                      stream_, error)) {
      return false;
    }
  }
  if (status != cudaSuccess) {
    *error = CudaErrorText(status, "expert kernels");
    return false;
  }
  return true;
}

bool GpuExperts::Compute(int layer, const float* x, int64_t n,
                         std::span<const ExpertRoute> routes, float* out,
                         std::string* error) {
  const int64_t h = options_.hidden, i = options_.intermediate;
  std::lock_guard<std::mutex> lock(mutex_);
  cudaSetDevice(options_.device);
  // However this returns, nothing it enqueued is still running after: its
  // buffers are freed and regrown in the legacy stream's order, which does
  // not wait for stream_.
  struct DrainOnReturn {
    cudaStream_t stream;
    ~DrainOnReturn() { cudaStreamSynchronize(stream); }
  } drain{stream_};
  // Group the routes by expert (counting sort, rows in order within one).
  std::map<int, std::vector<int64_t>> by_expert;
  for (size_t r = 0; r < routes.size(); ++r) {
    const ExpertRoute& route = routes[r];
    if (route.row < 0 || route.row >= n) {
      *error = "route " + std::to_string(r) + ": row " +
               std::to_string(route.row) + " outside [0, " + std::to_string(n) +
               ")";
      return false;
    }
    by_expert[route.expert].push_back(static_cast<int64_t>(r));
  }
  Slots slots;
  slots.count = static_cast<int64_t>(routes.size());
  const int64_t count = slots.count;
  std::vector<const float*> w13_scales, w2_scales;
  std::vector<int32_t> src_rows, row_offsets(n + 1, 0), row_slots(count);
  std::vector<float> weights;
  for (const auto& [expert, members] : by_expert) {
    auto found = experts_.find({layer, expert});
    if (found == experts_.end()) {
      *error = ExpertName(layer, expert) + " is not held on device " +
               std::to_string(options_.device);
      return false;
    }
    slots.groups.push_back({found->second.get(),
                            static_cast<int64_t>(src_rows.size()),
                            static_cast<int64_t>(members.size())});
    for (int64_t r : members) {
      src_rows.push_back(routes[r].row);
      weights.push_back(routes[r].weight);
      w13_scales.push_back(found->second->w13_scales);
      w2_scales.push_back(found->second->w2_scales);
      ++row_offsets[routes[r].row + 1];
    }
  }
  for (int64_t r = 0; r < n; ++r) row_offsets[r + 1] += row_offsets[r];
  std::vector<int32_t> fill(row_offsets.begin(), row_offsets.end() - 1);
  for (int64_t s = 0; s < count; ++s) row_slots[fill[src_rows[s]]++] = s;

  const size_t pointers = 2 * count * sizeof(float*);
  slots.src_rows_at = pointers;
  slots.row_offsets_at = slots.src_rows_at + count * 4;
  slots.row_slots_at = slots.row_offsets_at + (n + 1) * 4;
  slots.weights_at = slots.row_slots_at + count * 4;
  slots.meta.resize(slots.weights_at + count * 4);
  uint8_t* meta = slots.meta.data();
  std::memcpy(meta, w13_scales.data(), count * sizeof(float*));
  std::memcpy(meta + count * sizeof(float*), w2_scales.data(),
              count * sizeof(float*));
  std::memcpy(meta + slots.src_rows_at, src_rows.data(), count * 4);
  std::memcpy(meta + slots.row_offsets_at, row_offsets.data(), (n + 1) * 4);
  std::memcpy(meta + slots.row_slots_at, row_slots.data(), count * 4);
  std::memcpy(meta + slots.weights_at, weights.data(), count * 4);

  const int64_t element = ElementBytes(format_);
  const int64_t rows = std::max<int64_t>(count, 1);
  cudaError_t status = cudaSuccess;
  const std::pair<DeviceBuffer*, int64_t> sizes[] = {
      {&x_, n * h * 4},
      {&meta_, int64_t(slots.meta.size())},
      {&x_q_, rows * h * element},
      {&x_scales_, rows * 4},
      {&g13_, rows * 2 * i * 4},
      {&h_q_, rows * i * element},
      {&h_scales_, rows * 4},
      {&y_, rows * h * 4},
      {&out_, n * h * 4}};
  for (const auto& [buffer, bytes] : sizes) {
    if (status == cudaSuccess)
      status = buffer->Reserve(std::max<int64_t>(bytes, 4));
  }
  if (status == cudaSuccess) {
    status = cudaMemcpyAsync(x_.get(), x, n * h * 4, cudaMemcpyHostToDevice,
                             stream_);
  }
  if (status == cudaSuccess) {
    status = cudaMemcpyAsync(meta_.get(), meta, slots.meta.size(),
                             cudaMemcpyHostToDevice, stream_);
  }
  if (status != cudaSuccess) {
    *error = CudaErrorText(status, "expert inputs");
    return false;
  }
  if (count > 0 && !RunProducts(slots, error)) return false;
  const auto* device_meta = meta_.get<uint8_t>();
  status = CombineSlots(
      y_.get<float>(), h_scales_.get<float>(),
      reinterpret_cast<const float* const*>(device_meta) + count,
      reinterpret_cast<const float*>(device_meta + slots.weights_at),
      reinterpret_cast<const int32_t*>(device_meta + slots.row_offsets_at),
      reinterpret_cast<const int32_t*>(device_meta + slots.row_slots_at), n, h,
      out_.get<float>(), stream_);
  if (status == cudaSuccess) {
    status = cudaMemcpyAsync(out, out_.get(), n * h * 4, cudaMemcpyDeviceToHost,
                             stream_);
  }
  if (status == cudaSuccess) status = cudaStreamSynchronize(stream_);
  if (status != cudaSuccess) {
    *error = CudaErrorText(status, "expert compute");
    return false;
  }
  return true;
}

}  // namespace moe::cuda

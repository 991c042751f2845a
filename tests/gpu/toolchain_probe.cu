// What a GPU machine offers the project, printed before its GPU tests run:
// the driver and runtime versions, each device's compute capability, memory
// and stream-ordered memory pools (cudaMallocAsync), and the cuBLASLt and
// (with MOE_PROBE_NCCL) NCCL versions it links. scripts/gpu-check.sh
// compiles it there with that machine's nvcc, which checks the compiler and
// the headers too, and falls back to the copy built with the project.
// Exits 1 when there is no usable device.
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdio>

#ifdef MOE_PROBE_NCCL
#include <nccl.h>
#endif

namespace {

void PrintVersion(const char* what, int version) {
  std::printf("%s %d.%d\n", what, version / 1000, (version % 1000) / 10);
}

}  // namespace

int main() {
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  PrintVersion("CUDA driver API", driver);
  PrintVersion("CUDA runtime", runtime);
  std::printf("cuBLASLt %zu\n", cublasLtGetVersion());
#ifdef MOE_PROBE_NCCL
  int nccl = 0;
  ncclGetVersion(&nccl);
  std::printf("NCCL %d (headers %d.%d.%d)\n", nccl, NCCL_MAJOR, NCCL_MINOR,
              NCCL_PATCH);
#else
  std::printf("NCCL: not probed (no nccl.h)\n");
#endif
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess || count == 0) {
    std::printf("no usable CUDA device: %s\n", cudaGetErrorString(status));
    return 1;
  }
  for (int device = 0; device < count; ++device) {
    cudaDeviceProp properties{};
    int pools = 0;
    size_t free_bytes = 0, total_bytes = 0;
    cudaGetDeviceProperties(&properties, device);
    cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, device);
    cudaSetDevice(device);
    cudaMemGetInfo(&free_bytes, &total_bytes);
    std::printf(
        "device %d: %s, compute capability %d.%d, %d SMs, %.1f of %.1f GiB "
        "free, L2 %.0f MiB, memory pools %s\n",
        device, properties.name, properties.major, properties.minor,
        properties.multiProcessorCount, free_bytes / double(1 << 30),
        total_bytes / double(1 << 30), properties.l2CacheSize / double(1 << 20),
        pools ? "yes" : "NO");
  }
  return 0;
}

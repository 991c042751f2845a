#include "link/cuda/nccl_pipe.h"

#include <cstring>
#include <limits>
#include <thread>

#include "core/cuda/cuda_check.h"

namespace moe {
namespace {

using Clock = std::chrono::steady_clock;

// Connect's first payload each way.
constexpr size_t kWarmUpBytes = 8;

std::string NcclErrorText(ncclResult_t result, const char* what) {
  std::string text = std::string(what) + ": " + ncclGetErrorString(result);
  // NCCL keeps the details of its last failure apart from the code.
  const char* last = ncclGetLastError(nullptr);
  if (last != nullptr && *last != '\0') text += std::string(" (") + last + ")";
  return text;
}

std::string Milliseconds(std::chrono::milliseconds duration) {
  return std::to_string(duration.count()) + " ms";
}

// Polls spin briefly (a message in flight lands within microseconds), then
// sleep in short steps so that a long wait costs little CPU.
class Backoff {
 public:
  void Pause() {
    if (Clock::now() - start_ < kSpin) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(kSleep);
    }
  }

 private:
  static constexpr std::chrono::microseconds kSpin{200};
  static constexpr std::chrono::microseconds kSleep{50};
  const Clock::time_point start_ = Clock::now();
};

}  // namespace

bool NewNcclUniqueId(std::string* id, std::string* error) {
  ncclUniqueId unique_id;
  const ncclResult_t result = ncclGetUniqueId(&unique_id);
  if (result != ncclSuccess) {
    *error = NcclErrorText(result, "ncclGetUniqueId");
    return false;
  }
  id->assign(unique_id.internal, NCCL_UNIQUE_ID_BYTES);
  return true;
}

std::unique_ptr<NcclPipe> NcclPipe::Connect(const Options& options,
                                            std::string* error,
                                            std::function<bool()> abandoned) {
  if (options.rank != 0 && options.rank != 1) {
    *error = "rank must be 0 or 1, not " + std::to_string(options.rank);
    return nullptr;
  }
  if (options.send_id.size() != NCCL_UNIQUE_ID_BYTES ||
      options.receive_id.size() != NCCL_UNIQUE_ID_BYTES) {
    *error = "NCCL unique ids have " + std::to_string(NCCL_UNIQUE_ID_BYTES) +
             " bytes (send id " + std::to_string(options.send_id.size()) +
             ", receive id " + std::to_string(options.receive_id.size()) + ")";
    return nullptr;
  }
  if (options.send_id == options.receive_id) {
    *error = "the send and receive ids must name different communicators";
    return nullptr;
  }
  const Clock::time_point deadline = Clock::now() + options.connect_timeout;
  std::unique_ptr<NcclPipe> pipe(new NcclPipe(options));
  pipe->abandoned_ = std::move(abandoned);
  if (!pipe->CreateResources(error)) {
    pipe->Abort();
    return nullptr;
  }
  for (ncclComm_t* comm : pipe->CommsInPeerOrder()) {
    const bool sending = comm == &pipe->send_comm_;
    if (!pipe->Join(comm, sending ? options.send_id : options.receive_id,
                    deadline, error)) {
      *error = std::string("joining the ") + (sending ? "send" : "receive") +
               " communicator: " + *error;
      pipe->Abort();
      return nullptr;
    }
  }
  for (ncclComm_t* comm : pipe->CommsInPeerOrder()) {
    if (!pipe->WarmUp(comm, deadline, error)) {
      *error = std::string("first message on the ") +
               (comm == &pipe->send_comm_ ? "send" : "receive") +
               " communicator: " + *error;
      pipe->Abort();
      return nullptr;
    }
  }
  pipe->abandoned_ = nullptr;  // what it refers to may go now
  return pipe;
}

bool NcclPipe::CreateResources(std::string* error) {
  cudaError_t status = cudaSuccess;
  const char* what = "";
  // Runs `call` unless an earlier step failed.
  auto step = [&](const char* name, auto call) {
    if (status != cudaSuccess) return;
    what = name;
    status = call();
  };
  step("cudaSetDevice", [&] { return cudaSetDevice(options_.device); });
  for (cudaStream_t* stream :
       {&copy_stream_, &send_stream_, &receive_stream_}) {
    step("cudaStreamCreate", [&] {
      return cudaStreamCreateWithFlags(stream, cudaStreamNonBlocking);
    });
  }
  for (cudaEvent_t* event : {&send_event_, &receive_event_}) {
    step("cudaEventCreate", [&] {
      return cudaEventCreateWithFlags(event, cudaEventDisableTiming);
    });
  }
  step("cudaMemPoolCreate", [&] {
    cudaMemPoolProps props{};
    props.allocType = cudaMemAllocationTypePinned;
    props.location.type = cudaMemLocationTypeDevice;
    props.location.id = options_.device;
    return cudaMemPoolCreate(&pool_, &props);
  });
  step("cudaMemPoolSetAttribute", [&] {
    // Freed buffers stay in the pool for the next messages.
    uint64_t keep = std::numeric_limits<uint64_t>::max();
    return cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrReleaseThreshold,
                                   &keep);
  });
  step("cudaMemPoolSetAttribute", [&] {
    // The pool must not hand Send a buffer whose ncclSend is still waiting
    // for the peer by making the copy stream wait for that send: it
    // allocates anew instead.
    int no = 0;
    return cudaMemPoolSetAttribute(
        pool_, cudaMemPoolReuseAllowInternalDependencies, &no);
  });
  // NCCL between two GPUs of one process reads and writes the buffers of
  // the peer directly ("P2P/direct pointer"), and other devices see pool
  // memory only where it is granted.
  int device_count = 0;
  step("cudaGetDeviceCount", [&] { return cudaGetDeviceCount(&device_count); });
  for (int other = 0; other < device_count; ++other) {
    int can_access = 0;
    if (other == options_.device) continue;
    step("cudaDeviceCanAccessPeer", [&] {
      return cudaDeviceCanAccessPeer(&can_access, other, options_.device);
    });
    if (can_access == 0) continue;
    step("cudaMemPoolSetAccess", [&] {
      cudaMemAccessDesc access{};
      access.location.type = cudaMemLocationTypeDevice;
      access.location.id = other;
      access.flags = cudaMemAccessFlagsProtReadWrite;
      return cudaMemPoolSetAccess(pool_, &access, 1);
    });
  }
  if (status != cudaSuccess) {
    *error = cuda::CudaErrorText(status, (std::string(what) + " on device " +
                                          std::to_string(options_.device))
                                             .c_str());
    return false;
  }
  return true;
}

std::array<ncclComm_t*, 2> NcclPipe::CommsInPeerOrder() {
  if (options_.rank == 0) return {&send_comm_, &receive_comm_};
  return {&receive_comm_, &send_comm_};
}

bool NcclPipe::Join(ncclComm_t* comm, const std::string& id,
                    Clock::time_point deadline, std::string* error) {
  ncclUniqueId unique_id;
  std::memcpy(unique_id.internal, id.data(), NCCL_UNIQUE_ID_BYTES);
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  // Non-blocking, so that a peer that never comes cannot hang Connect.
  config.blocking = 0;
  // A link's kernels wait for their peer for as long as it takes, many of
  // them at once on the router's GPU (two per GPU worker): one block each
  // keeps them from taking the SMs that every kernel needs to make progress.
  config.maxCTAs = 1;
  std::lock_guard<std::mutex> lock(nccl_mutex_);
  ncclResult_t state = ncclCommInitRankConfig(comm, /*nranks=*/2, unique_id,
                                              options_.rank, &config);
  if (state == ncclInProgress) {
    switch (AwaitStateLocked(*comm, deadline, &state)) {
      case WaitResult::kDone:
        break;
      case WaitResult::kTimeout:
        *error = "timed out after " + Milliseconds(options_.connect_timeout) +
                 ": the peer never joined";
        return false;
      case WaitResult::kFailed:
        *error = "the peer gave up joining";
        return false;
    }
  }
  if (state != ncclSuccess) {
    *error = NcclErrorText(state, "ncclCommInitRankConfig");
    return false;
  }
  return true;
}

bool NcclPipe::WarmUp(ncclComm_t* comm, Clock::time_point deadline,
                      std::string* error) {
  const bool sending = comm == &send_comm_;
  const int peer = 1 - options_.rank;
  cudaStream_t stream = sending ? send_stream_ : receive_stream_;
  cudaEvent_t event = sending ? send_event_ : receive_event_;
  const char* what = sending ? "ncclSend" : "ncclRecv";
  void* buffer = nullptr;
  cudaError_t status =
      cudaMallocFromPoolAsync(&buffer, kWarmUpBytes, pool_, stream);
  if (status != cudaSuccess) {
    *error = cuda::CudaErrorText(status, "cudaMallocFromPoolAsync");
    return false;
  }
  const bool launched = Launch(
      comm, what,
      [&](ncclComm_t c) {
        return sending
                   ? ncclSend(buffer, kWarmUpBytes, ncclUint8, peer, c, stream)
                   : ncclRecv(buffer, kWarmUpBytes, ncclUint8, peer, c, stream);
      },
      deadline, error);
  // Stream-ordered: the buffer returns to the pool after the transfer.
  cudaFreeAsync(buffer, stream);
  if (!launched) return false;
  switch (Await(stream, event, deadline, what, error)) {
    case WaitResult::kDone:
      return true;
    case WaitResult::kTimeout:
      *error = "timed out after " + Milliseconds(options_.connect_timeout) +
               ": the peer never answered";
      return false;
    case WaitResult::kFailed:
      break;
  }
  return false;
}

template <typename Op>
bool NcclPipe::Launch(ncclComm_t* comm, const char* what, Op op,
                      Clock::time_point deadline, std::string* error) {
  std::lock_guard<std::mutex> lock(nccl_mutex_);
  if (closed_) {
    *error = std::string(what) + ": the pipe is broken";
    return false;
  }
  ncclResult_t state = op(*comm);
  switch (AwaitStateLocked(*comm, deadline, &state)) {
    case WaitResult::kDone:
      break;
    case WaitResult::kTimeout:
      *error = std::string(what) + ": NCCL did not launch it within " +
               Milliseconds(options_.connect_timeout);
      return false;
    case WaitResult::kFailed:
      *error = std::string(what) + ": the pipe was aborted";
      return false;
  }
  if (state != ncclSuccess) {
    *error = NcclErrorText(state, what);
    return false;
  }
  return true;
}

NcclPipe::WaitResult NcclPipe::AwaitStateLocked(ncclComm_t comm,
                                                Clock::time_point deadline,
                                                ncclResult_t* state) {
  Backoff backoff;
  while (*state == ncclInProgress) {
    // Abort is waiting for nccl_mutex_ (give it up), or the peer will not
    // come.
    if (broken_.load() || Abandoned()) return WaitResult::kFailed;
    if (Clock::now() >= deadline) return WaitResult::kTimeout;
    backoff.Pause();
    const ncclResult_t result = ncclCommGetAsyncError(comm, state);
    if (result != ncclSuccess) *state = result;
  }
  return WaitResult::kDone;
}

NcclPipe::WaitResult NcclPipe::Await(cudaStream_t stream, cudaEvent_t event,
                                     Clock::time_point deadline,
                                     const char* what, std::string* error) {
  const cudaError_t recorded = cudaEventRecord(event, stream);
  if (recorded != cudaSuccess) {
    *error = cuda::CudaErrorText(recorded, "cudaEventRecord");
    return WaitResult::kFailed;
  }
  Backoff backoff;
  while (true) {
    const cudaError_t query = cudaEventQuery(event);
    if (query != cudaSuccess && query != cudaErrorNotReady) {
      *error = cuda::CudaErrorText(query, what);
      return WaitResult::kFailed;
    }
    if (Abandoned()) {
      *error = std::string(what) + ": the peer gave up";
      return WaitResult::kFailed;
    }
    {
      std::lock_guard<std::mutex> lock(nccl_mutex_);
      if (closed_) {
        *error = std::string(what) + ": the pipe was aborted";
        return WaitResult::kFailed;
      }
      // Either direction's failure (a network error, the peer's abort)
      // breaks the pipe.
      for (ncclComm_t comm : {send_comm_, receive_comm_}) {
        ncclResult_t state = ncclSuccess;
        const ncclResult_t result = ncclCommGetAsyncError(comm, &state);
        if (result != ncclSuccess) state = result;
        if (state != ncclSuccess && state != ncclInProgress) {
          *error = NcclErrorText(state, what);
          return WaitResult::kFailed;
        }
      }
    }
    if (query == cudaSuccess) {
      // An abort ends NCCL's kernels early: the event then completes
      // without the data.
      if (broken_.load()) {
        *error = std::string(what) + ": the pipe was aborted";
        return WaitResult::kFailed;
      }
      return WaitResult::kDone;
    }
    if (Clock::now() >= deadline) {
      *error = std::string(what) + ": timed out";
      return WaitResult::kTimeout;
    }
    backoff.Pause();
  }
}

bool NcclPipe::Send(const void* data, size_t size, std::string* error) {
  std::lock_guard<std::mutex> lock(send_mutex_);
  if (broken_.load()) {
    *error = "the pipe is broken";
    return false;
  }
  if (size == 0) return true;
  // The payload gets a device buffer of its own on the copy stream, which
  // never waits for NCCL: staging it does not wait for earlier sends, which
  // wait for the peer.
  void* buffer = nullptr;
  cudaError_t status = cudaSetDevice(options_.device);
  if (status == cudaSuccess) {
    status = cudaMallocFromPoolAsync(&buffer, size, pool_, copy_stream_);
  }
  if (status == cudaSuccess) {
    status = cudaMemcpyAsync(buffer, data, size, cudaMemcpyHostToDevice,
                             copy_stream_);
  }
  if (status == cudaSuccess) {
    status = cudaEventRecord(send_event_, copy_stream_);
  }
  if (status == cudaSuccess) {
    status = cudaStreamWaitEvent(send_stream_, send_event_, 0);
  }
  if (status != cudaSuccess) {
    *error = cuda::CudaErrorText(status, "staging a payload on the device");
    Abort();
    if (buffer != nullptr) cudaFreeAsync(buffer, copy_stream_);
    cudaStreamSynchronize(copy_stream_);  // no copy reads `data` after return
    return false;
  }

  const int peer = 1 - options_.rank;
  const bool sent = Launch(
      &send_comm_, "ncclSend",
      [&](ncclComm_t comm) {
        return ncclSend(buffer, size, ncclUint8, peer, comm, send_stream_);
      },
      Clock::now() + options_.connect_timeout, error);
  // The abort first: it waits for a launch NCCL may still be making on the
  // send stream, which must come before the free.
  if (!sent) Abort();
  // Stream-ordered: the memory returns to the pool once the send read it.
  cudaFreeAsync(buffer, send_stream_);
  // `data` may be reused once its copy to the device is done.
  status = cudaStreamSynchronize(copy_stream_);
  if (!sent) return false;
  if (status != cudaSuccess) {
    *error = cuda::CudaErrorText(status, "copying a payload to the device");
    Abort();
    return false;
  }
  return true;
}

NcclPipe::ReceiveResult NcclPipe::Receive(size_t size, std::string* payload,
                                          Clock::time_point deadline,
                                          std::string* error) {
  std::lock_guard<std::mutex> lock(receive_mutex_);
  if (broken_.load()) {
    *error = "the pipe is broken";
    return ReceiveResult::kBroken;
  }
  payload->clear();
  if (size == 0) return ReceiveResult::kOk;
  cudaError_t status = cudaSetDevice(options_.device);
  if (status != cudaSuccess) {
    *error = cuda::CudaErrorText(status, "cudaSetDevice");
    return Fail(ReceiveResult::kBroken);
  }
  // Into a device buffer that grows on demand (stream-ordered, so the old
  // one goes once the receives before have written it).
  if (size > receive_capacity_) {
    if (receive_buffer_ != nullptr) {
      cudaFreeAsync(receive_buffer_, receive_stream_);
    }
    receive_buffer_ = nullptr;
    receive_capacity_ = 0;
    status =
        cudaMallocFromPoolAsync(&receive_buffer_, size, pool_, receive_stream_);
    if (status != cudaSuccess) {
      const std::string what =
          "allocating " + std::to_string(size) + " device bytes for a payload";
      *error = cuda::CudaErrorText(status, what.c_str());
      return Fail(ReceiveResult::kBroken);
    }
    receive_capacity_ = size;
  }
  const int peer = 1 - options_.rank;
  if (!Launch(
          &receive_comm_, "ncclRecv",
          [&](ncclComm_t comm) {
            return ncclRecv(receive_buffer_, size, ncclUint8, peer, comm,
                            receive_stream_);
          },
          Clock::now() + options_.connect_timeout, error)) {
    return Fail(ReceiveResult::kBroken);
  }
  switch (Await(receive_stream_, receive_event_, deadline,
                "waiting for a payload", error)) {
    case WaitResult::kDone:
      break;
    case WaitResult::kTimeout:
      return Fail(ReceiveResult::kTimeout);
    case WaitResult::kFailed:
      return Fail(ReceiveResult::kBroken);
  }
  // The payload is complete on the device, so this copy waits for nothing
  // else. It goes straight into pageable memory: a pinned staging buffer
  // would have to grow, and cudaFreeHost synchronizes the device.
  payload->resize(size);
  status = cudaMemcpyAsync(payload->data(), receive_buffer_, size,
                           cudaMemcpyDeviceToHost, receive_stream_);
  if (status == cudaSuccess) status = cudaStreamSynchronize(receive_stream_);
  if (status != cudaSuccess) {
    *error = cuda::CudaErrorText(status, "copying a payload to the host");
    return Fail(ReceiveResult::kBroken);
  }
  return ReceiveResult::kOk;
}

NcclPipe::ReceiveResult NcclPipe::Fail(ReceiveResult result) {
  Abort();
  return result;
}

void NcclPipe::Abort() {
  broken_.store(true);
  std::lock_guard<std::mutex> lock(nccl_mutex_);
  if (closed_) return;
  closed_ = true;
  cudaSetDevice(options_.device);
  // Blocking even on non-blocking communicators; it ends NCCL's kernels, so
  // the streams drain.
  if (send_comm_ != nullptr) ncclCommAbort(send_comm_);
  if (receive_comm_ != nullptr) ncclCommAbort(receive_comm_);
  send_comm_ = nullptr;
  receive_comm_ = nullptr;
}

NcclPipe::~NcclPipe() {
  Abort();
  if (receive_buffer_ != nullptr) {
    cudaFreeAsync(receive_buffer_, receive_stream_);
  }
  if (copy_stream_ != nullptr) cudaStreamDestroy(copy_stream_);
  if (send_stream_ != nullptr) cudaStreamDestroy(send_stream_);
  if (receive_stream_ != nullptr) cudaStreamDestroy(receive_stream_);
  if (send_event_ != nullptr) cudaEventDestroy(send_event_);
  if (receive_event_ != nullptr) cudaEventDestroy(receive_event_);
  // Returns at once; memory still in use is released when freed.
  if (pool_ != nullptr) cudaMemPoolDestroy(pool_);
}

}  // namespace moe

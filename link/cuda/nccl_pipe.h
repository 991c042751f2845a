#ifndef MOE_LINK_CUDA_NCCL_PIPE_H_
#define MOE_LINK_CUDA_NCCL_PIPE_H_

#include <cuda_runtime.h>
#include <nccl.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

namespace moe {

// A new ncclUniqueId as its 128 raw bytes; false + *error on failure. The
// process that makes it hosts NCCL's bootstrap root for that id, so it must
// live until both sides have connected.
bool NewNcclUniqueId(std::string* id, std::string* error);

// An ordered, reliable pipe of byte payloads between two processes (or
// threads on two GPUs) over NCCL point-to-point, whose sizes the receiver
// learns elsewhere (link/announced_link.h: a receive is posted only for a
// payload that was sent, so no NCCL kernel waits for one that may never
// come). Two 2-rank communicators, one per direction, each with its own CUDA
// stream, so a send never waits behind a receive (a worker can answer
// payload A while the router is already sending payload B). Payloads are
// staged through device buffers (NCCL moves device memory).
//
// One thread may Send while another Receives; Abort may come from any
// thread. NCCL refuses two ranks of one communicator on one device, so the
// two sides need two GPUs.
class NcclPipe {
 public:
  struct Options {
    int device = 0;          // CUDA device of this side
    int rank = 0;            // 0 or 1; the other side takes the other
    std::string send_id;     // unique id of the communicator this side sends on
    std::string receive_id;  // ... and receives on. Side 1 passes them swapped.
    // How long Connect waits for the peer; also bounds NCCL's own work (an
    // operation's launch, the flush when closing) so a vanished peer cannot
    // hang this side.
    std::chrono::milliseconds connect_timeout{10000};
  };

  // Joins both communicators (non-blocking NCCL, one after the other in an
  // order both sides share) and exchanges a first 8-byte payload each way,
  // which sets up NCCL's connections and proves the peer is there. Gives up
  // at connect_timeout, aborting them: the peer never came; or earlier, as
  // soon as `abandoned` (polled while waiting) says the peer will not come
  // or the caller gave up. nullptr + *error naming the step on failure.
  static std::unique_ptr<NcclPipe> Connect(
      const Options& options, std::string* error,
      std::function<bool()> abandoned = nullptr);

  NcclPipe(const NcclPipe&) = delete;
  NcclPipe& operator=(const NcclPipe&) = delete;
  // Aborts the communicators. Both sides abort (a link ends when either
  // side gives it up), which NCCL needs of every rank on one node.
  ~NcclPipe();

  // Sends one payload; returns once `data` may be reused (the bytes are
  // copied to the device) without waiting for the peer to receive it or any
  // earlier payload. false + *error when the pipe is broken; a failing Send
  // breaks it. An empty payload moves nothing.
  bool Send(const void* data, size_t size, std::string* error);

  enum class ReceiveResult { kOk, kTimeout, kBroken };
  // Receives the next payload, of `size` bytes, into *payload, waiting until
  // `deadline` (steady clock). On timeout or an NCCL/CUDA error it aborts
  // both communicators: the pipe is broken for good (a half-received payload
  // leaves the stream out of step), and later calls return kBroken / false.
  ReceiveResult Receive(size_t size, std::string* payload,
                        std::chrono::steady_clock::time_point deadline,
                        std::string* error);

  // Aborts both communicators, from any thread: a Receive blocked in another
  // thread returns kBroken, a Send false.
  void Abort();
  bool broken() const { return broken_.load(); }

 private:
  using Clock = std::chrono::steady_clock;
  enum class WaitResult { kDone, kTimeout, kFailed };

  explicit NcclPipe(const Options& options) : options_(options) {}

  bool CreateResources(std::string* error);
  // Both communicators in the order both sides handle them: first the one
  // rank 0 sends on. Joining or closing them one at a time in another order
  // would deadlock, each side waiting for the peer on a different one.
  std::array<ncclComm_t*, 2> CommsInPeerOrder();
  bool Join(ncclComm_t* comm, const std::string& id, Clock::time_point deadline,
            std::string* error);
  bool WarmUp(ncclComm_t* comm, Clock::time_point deadline, std::string* error);
  // Runs `op` on *comm, then waits for NCCL to finish launching it (a
  // non-blocking communicator answers ncclInProgress and launches in a
  // thread of its own).
  template <typename Op>
  bool Launch(ncclComm_t* comm, const char* what, Op op,
              Clock::time_point deadline, std::string* error);
  // Polls *comm's state until it leaves ncclInProgress; nccl_mutex_ held.
  WaitResult AwaitStateLocked(ncclComm_t comm, Clock::time_point deadline,
                              ncclResult_t* state);
  // Records `event` on `stream` (after its NCCL work), then polls it and
  // both communicators' errors.
  WaitResult Await(cudaStream_t stream, cudaEvent_t event,
                   Clock::time_point deadline, const char* what,
                   std::string* error);
  ReceiveResult Fail(ReceiveResult result);

  // Connect's `abandoned`; null after Connect.
  bool Abandoned() const { return abandoned_ && abandoned_(); }

  const Options options_;
  std::function<bool()> abandoned_;
  std::atomic<bool> broken_{false};
  std::mutex send_mutex_;     // one Send at a time
  std::mutex receive_mutex_;  // one Receive at a time

  // This pipe's NCCL calls run one at a time (a communicator must not be
  // called from two threads at once), and Abort must not free a
  // communicator while another thread is calling NCCL on it.
  std::mutex nccl_mutex_;
  bool closed_ = false;  // communicators aborted or destroyed; nccl_mutex_
  ncclComm_t send_comm_ = nullptr;
  ncclComm_t receive_comm_ = nullptr;

  // Send copies each payload into a device buffer of its own, on
  // copy_stream_, and ncclSends it on send_stream_: the copy never queues
  // behind an earlier ncclSend that is still waiting for the peer.
  cudaStream_t copy_stream_ = nullptr;
  cudaStream_t send_stream_ = nullptr;
  cudaStream_t receive_stream_ = nullptr;
  cudaEvent_t send_event_ = nullptr;     // a payload is on the device
  cudaEvent_t receive_event_ = nullptr;  // the receive stream's progress
  // Stream-ordered device memory: allocating and freeing it never
  // synchronizes the device, which would wait for an NCCL kernel that waits
  // for the peer. Peer devices may access it (NCCL within one process).
  cudaMemPool_t pool_ = nullptr;
  void* receive_buffer_ = nullptr;  // grows on demand
  size_t receive_capacity_ = 0;
};

}  // namespace moe

#endif  // MOE_LINK_CUDA_NCCL_PIPE_H_

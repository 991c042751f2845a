#ifndef MOE_SDK_CPP_CANCEL_TOKEN_H_
#define MOE_SDK_CPP_CANCEL_TOKEN_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/client_context.h"

namespace moe::client {

// Cancels a call from another thread: Cancel() ends the call in flight (the
// server stops generating and frees what it held) and any retry still to
// come. One call at a time may use a token; once cancelled it stays so.
class CancelToken {
 public:
  CancelToken() = default;
  CancelToken(const CancelToken&) = delete;
  CancelToken& operator=(const CancelToken&) = delete;

  void Cancel();
  bool cancelled() const;

  // Used by the client around each attempt of a call: Cancel() reaches the
  // attached context. Attach returns false (attaching nothing) when the token
  // is already cancelled.
  bool Attach(grpc::ClientContext* context);
  void Detach();

  // Waits until `deadline` or Cancel(), whichever comes first; returns false
  // when cancelled.
  bool SleepUntil(absl::Time deadline) const;

 private:
  mutable absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace moe::client

#endif  // MOE_SDK_CPP_CANCEL_TOKEN_H_

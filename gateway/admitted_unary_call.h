#ifndef MOE_GATEWAY_ADMITTED_UNARY_CALL_H_
#define MOE_GATEWAY_ADMITTED_UNARY_CALL_H_

#include <functional>

#include "absl/status/status.h"
#include "gateway/admission.h"
#include "grpcpp/support/server_callback.h"

namespace moe {

// A unary call whose work waits for a slot of the gateway's admission, as
// a Generate stream does: it runs when admitted, a full queue answers
// RESOURCE_EXHAUSTED, and a call cancelled (or past its deadline) while
// queued leaves the queue. Start with Begin(); deletes itself when done.
class AdmittedUnaryCall : public grpc::ServerUnaryReactor {
 public:
  // `work` fills the reply and says how the call ends.
  AdmittedUnaryCall(Admission& admission, std::function<absl::Status()> work)
      : admission_(admission), work_(std::move(work)) {}

  void Begin();

  void OnCancel() override;
  void OnDone() override { delete this; }

 private:
  void Run();

  Admission& admission_;
  std::function<absl::Status()> work_;
};

}  // namespace moe

#endif  // MOE_GATEWAY_ADMITTED_UNARY_CALL_H_

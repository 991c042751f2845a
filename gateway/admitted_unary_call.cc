#include "gateway/admitted_unary_call.h"

#include "rpc/grpc_status.h"

namespace moe {

void AdmittedUnaryCall::Begin() {
  const absl::Status admitted = admission_.Admit(this, [this] { Run(); });
  if (!admitted.ok()) Finish(ToGrpcStatus(admitted));
}

void AdmittedUnaryCall::Run() {
  const absl::Status status = work_();
  // `this` may be deleted once finished, and Release may start a waiting
  // call on this thread: finish first, from locals after.
  Admission& admission = admission_;
  Finish(ToGrpcStatus(status));
  admission.Release();
}

void AdmittedUnaryCall::OnCancel() {
  // Still queued: it never runs, so it ends here. Otherwise Run finishes it.
  if (admission_.Withdraw(this)) {
    Finish(grpc::Status(grpc::StatusCode::CANCELLED,
                        "cancelled while waiting for admission"));
  }
}

}  // namespace moe

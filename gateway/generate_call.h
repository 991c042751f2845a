#ifndef MOE_GATEWAY_GENERATE_CALL_H_
#define MOE_GATEWAY_GENERATE_CALL_H_

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "core/tokenizer/incremental_detokenizer.h"
#include "core/tokenizer/tokenizer.h"
#include "gateway/admission.h"
#include "gateway/api_keys.h"
#include "gateway/gateway_metrics.h"
#include "gateway/request_ids.h"
#include "gateway/router_pool.h"
#include "gateway/stop_matcher.h"
#include "grpcpp/client_context.h"
#include "moe/v1/inference.grpc.pb.h"
#include "moe/v1/router.grpc.pb.h"

namespace moe {

// What the Generate calls of one gateway share.
struct GatewayParts {
  const Tokenizer& tokenizer;
  Admission& admission;
  RouterPool& routers;
  RequestIds& ids;
  GatewayMetrics& metrics;
  ApiKeys* keys;  // null: no API keys asked for
};

// One public Generate stream relayed to a router's Generate stream: router
// tokens become text (detokenized incrementally, cut at stop strings) and go
// out one write at a time, merged while a write is in flight. The router call
// starts when admission gives the request a slot and ends before the public
// stream finishes, so the reactor outlives every callback of both calls; it
// deletes itself in OnDone. The admission slot (and the API key's) is held
// until every response has been written, not just while the router works:
// a client that stops reading keeps its slots, so the streams that hold
// undelivered text, and the memory they hold, are bounded by admission. A
// router that cannot be reached before
// the first token came is left for another one, once per router.
class GenerateCall : public grpc::ServerWriteReactor<v1::GenerateResponse> {
 public:
  // `router_request` carries the claimed request id, which the call releases
  // when it ends.
  // `key`: the API key's slot the request holds, when keys are asked for;
  // `arrived`: when Generate was called (the latencies count from there,
  // validation and tokenization included).
  GenerateCall(GatewayParts parts, grpc::CallbackServerContext* context,
               v1::RouterGenerateRequest router_request,
               std::vector<std::string> stops,
               std::optional<ApiKeys::Lease> key, absl::Time arrived);

  // Asks admission for a slot; finishes at once with RESOURCE_EXHAUSTED
  // when there is none to wait for.
  void Begin();

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override { delete this; }

 private:
  class RouterReader
      : public grpc::ClientReadReactor<v1::RouterGenerateResponse> {
   public:
    explicit RouterReader(GenerateCall& call) : call_(call) {}
    void OnReadDone(bool ok) override { call_.OnRouterRead(ok); }
    void OnDone(const grpc::Status& status) override {
      call_.OnRouterDone(status);
    }

   private:
    GenerateCall& call_;
  };

  enum class Phase { kWaiting, kRunning, kEnded };

  // Admission's callback: the request has a slot.
  void StartRouterCall();
  // Starts the call on the least loaded router not tried yet. Unlocks.
  void CallRouter(std::unique_lock<std::mutex>& lock);
  // Whether a router call that ended with `status` goes to another router:
  // nothing was streamed, the router was unreachable, and one is left.
  bool ShouldRetry(const grpc::Status& status) const;
  void OnRouterRead(bool ok);
  void OnRouterDone(const grpc::Status& status);

  // Counts the `tokens` a router message brought in the metrics.
  void ObserveTokens(int tokens);
  // Feeds one generated token through the detokenizer and the stop strings;
  // false once the stream must end here.
  bool TakeToken(int32_t token);
  // Sets the last response's finish reason and usage.
  void SetFinal(v1::FinishReason reason);
  // Returns the router's count and the request id.
  void ReleaseResources();
  // Returns the admission slot and the API key's, once nothing is left to
  // write.
  void ReleaseSlots();
  // Writes what is pending, or finishes the stream. Finish is called after
  // the lock is released and last: from then on OnDone may delete `this`.
  void Advance(std::unique_lock<std::mutex>& lock);
  std::optional<grpc::Status> NextWrite();

  const GatewayParts parts_;
  grpc::CallbackServerContext* const server_context_;
  const absl::Time arrived_;
  std::optional<ApiKeys::Lease> key_;
  const v1::RouterGenerateRequest router_request_;
  // One context and reader per router tried; the last is the live one. The
  // earlier ones stay until the reactor is deleted: their OnDone was the
  // callback that moved on.
  std::vector<std::unique_ptr<grpc::ClientContext>> router_contexts_;
  std::vector<std::unique_ptr<RouterReader>> readers_;
  v1::RouterGenerateResponse router_response_;
  int router_index_ = -1;
  std::vector<int> routers_tried_;

  std::mutex mutex_;
  Phase phase_ = Phase::kWaiting;
  bool holds_slot_ = false;  // admission gave a slot
  IncrementalDetokenizer detokenizer_;
  StopMatcher stop_matcher_;
  v1::GenerateResponse pending_;  // text and tokens not yet written
  v1::FinishReason router_finish_ = v1::FINISH_REASON_UNSPECIFIED;
  int completion_tokens_ = 0;
  absl::Time last_tokens_at_;  // when the last router message with tokens came
  bool final_ready_ = false;   // pending_ holds the last response
  bool final_written_ = false;
  bool client_gone_ = false;           // cancelled, deadline, or a failed write
  std::optional<grpc::Status> error_;  // ends the stream with this status
  v1::GenerateResponse response_;      // the write in flight
  bool writing_ = false;
  bool finished_ = false;
};

}  // namespace moe

#endif  // MOE_GATEWAY_GENERATE_CALL_H_

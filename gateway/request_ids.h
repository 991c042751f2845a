#ifndef MOE_GATEWAY_REQUEST_IDS_H_
#define MOE_GATEWAY_REQUEST_IDS_H_

#include <cstdint>
#include <mutex>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"

namespace moe {

// The ids of the requests in flight through this gateway: caller-chosen ones
// must be unique among them, and requests without one get a fresh id that
// no other gateway in front of the same router makes (a random prefix per
// process). Thread-safe.
class RequestIds {
 public:
  RequestIds();

  // Claims `requested`, or a fresh id when it is empty; ALREADY_EXISTS
  // naming request_id when it is in flight.
  absl::StatusOr<std::string> Claim(const std::string& requested);
  void Release(const std::string& id);

 private:
  const std::string prefix_;
  std::mutex mutex_;
  uint64_t next_ = 1;
  absl::flat_hash_set<std::string> live_;
};

}  // namespace moe

#endif  // MOE_GATEWAY_REQUEST_IDS_H_

#include "gateway/request_ids.h"

#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace moe {
namespace {

std::string RandomPrefix() {
  std::random_device device;
  const uint64_t bits = (uint64_t{device()} << 32) | device();
  return absl::StrFormat("gw-%016x-", bits);
}

}  // namespace

RequestIds::RequestIds() : prefix_(RandomPrefix()) {}

absl::StatusOr<std::string> RequestIds::Claim(const std::string& requested) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string id =
      requested.empty() ? absl::StrCat(prefix_, next_++) : requested;
  if (!live_.insert(id).second) {
    return absl::AlreadyExistsError(
        absl::StrCat("request_id: \"", id, "\" is already in flight"));
  }
  return id;
}

void RequestIds::Release(const std::string& id) {
  std::lock_guard<std::mutex> lock(mutex_);
  live_.erase(id);
}

}  // namespace moe

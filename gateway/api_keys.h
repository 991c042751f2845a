#ifndef MOE_GATEWAY_API_KEYS_H_
#define MOE_GATEWAY_API_KEYS_H_

#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace moe {

// The clients a gateway serves, each with an API key and limits (--api-keys
// FILE). Clients send "authorization: Bearer KEY". Keys are kept as their
// SHA-256 and compared in constant time. Thread-safe.
class ApiKeys {
 public:
  using Digest = std::array<uint8_t, 32>;
  struct Key {
    std::string name;
    Digest sha256;
    int max_in_flight = 0;          // requests running at once; 0: any
    int64_t tokens_per_minute = 0;  // prompt + generated; 0: any
  };

  // Reads FILE: one key per line, "NAME SHA256-HEX [max_in_flight=N]
  // [tokens_per_minute=N]" (the hash of the key as `printf %s KEY |
  // sha256sum` prints it); blank lines and lines starting with # are
  // skipped. INVALID_ARGUMENT naming the file and line of a bad one.
  static absl::StatusOr<std::unique_ptr<ApiKeys>> Load(const std::string& path);
  explicit ApiKeys(std::vector<Key> keys);

  // A request admitted under a key: holds one of its in-flight slots until
  // it is destroyed, and counts the tokens it used.
  class Lease {
   public:
    Lease(ApiKeys* keys, int index) : keys_(keys), index_(index) {}
    Lease(Lease&& other) noexcept
        : keys_(std::exchange(other.keys_, nullptr)), index_(other.index_) {}
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    // Counts `tokens` against the key's tokens per minute.
    void AddTokens(int64_t tokens);

   private:
    ApiKeys* keys_;
    int index_;
  };

  // Whose key `authorization` ("Bearer KEY") is: UNAUTHENTICATED when it is
  // missing or no key matches.
  absl::StatusOr<int> Authenticate(
      std::optional<std::string_view> authorization) const;
  // Authenticate, then a slot of the key's requests: RESOURCE_EXHAUSTED
  // naming the limit when the key runs max_in_flight requests or used its
  // tokens_per_minute in the minute before `now`.
  absl::StatusOr<Lease> Admit(std::optional<std::string_view> authorization,
                              absl::Time now);

  // Per key, for the metrics.
  struct Usage {
    std::string name;
    int64_t requests = 0;  // admitted
    int64_t tokens = 0;
    int in_flight = 0;
  };
  std::vector<Usage> Snapshot() const;

  static Digest Sha256(std::string_view text);

 private:
  struct State {
    int in_flight = 0;
    int64_t requests = 0;
    int64_t tokens = 0;
    std::deque<std::pair<absl::Time, int64_t>> recent;  // the last minute
    int64_t recent_tokens = 0;
  };
  void Release(int index);
  void AddTokens(int index, int64_t tokens, absl::Time now);
  // Drops what is older than a minute before `now`. Locked.
  void Forget(State& state, absl::Time now);

  const std::vector<Key> keys_;
  mutable std::mutex mutex_;
  std::vector<State> states_;
};

}  // namespace moe

#endif  // MOE_GATEWAY_API_KEYS_H_

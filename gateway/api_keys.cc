#include "gateway/api_keys.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/util/file_util.h"

namespace moe {
namespace {

constexpr absl::Duration kWindow = absl::Minutes(1);

// One "KEY=N" limit of a line into `key`.
absl::Status ParseLimit(absl::string_view item, ApiKeys::Key& key) {
  const std::vector<absl::string_view> parts = absl::StrSplit(item, '=');
  int64_t value = 0;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[1], &value) || value < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", item, "\" is not LIMIT=N with N >= 0"));
  }
  if (parts[0] == "max_in_flight") {
    key.max_in_flight = static_cast<int>(value);
  } else if (parts[0] == "tokens_per_minute") {
    key.tokens_per_minute = value;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown limit \"", parts[0],
                     "\" (max_in_flight or tokens_per_minute)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ApiKeys::Key> ParseLine(absl::string_view line) {
  const std::vector<absl::string_view> fields =
      absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
  if (fields.size() < 2) {
    return absl::InvalidArgumentError(
        "expected NAME SHA256-HEX [max_in_flight=N] [tokens_per_minute=N]");
  }
  ApiKeys::Key key;
  key.name = std::string(fields[0]);
  if (fields[1].size() != 64 ||
      !std::all_of(fields[1].begin(), fields[1].end(), absl::ascii_isxdigit)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "key ", key.name, ": the SHA-256 is not 64 hexadecimal digits"));
  }
  const std::string digest = absl::HexStringToBytes(fields[1]);
  std::copy(digest.begin(), digest.end(), key.sha256.begin());
  for (size_t i = 2; i < fields.size(); ++i) {
    const absl::Status limit = ParseLimit(fields[i], key);
    if (!limit.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("key ", key.name, ": ", limit.message()));
    }
  }
  return key;
}

}  // namespace

ApiKeys::Digest ApiKeys::Sha256(std::string_view text) {
  Digest digest;
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(),
         digest.data());
  return digest;
}

absl::StatusOr<std::unique_ptr<ApiKeys>> ApiKeys::Load(
    const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--api-keys: cannot read ", path, ": ", text.status().message()));
  }
  std::vector<Key> keys;
  int number = 0;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    ++number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    absl::StatusOr<Key> key = ParseLine(line);
    if (!key.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--api-keys: ", path,
                                                     " line ", number, ": ",
                                                     key.status().message()));
    }
    for (const Key& known : keys) {
      if (known.name == key->name) {
        return absl::InvalidArgumentError(
            absl::StrCat("--api-keys: ", path, " line ", number, ": key ",
                         key->name, " is named twice"));
      }
    }
    keys.push_back(*std::move(key));
  }
  if (keys.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--api-keys: ", path, " has no key"));
  }
  return std::make_unique<ApiKeys>(std::move(keys));
}

ApiKeys::ApiKeys(std::vector<Key> keys)
    : keys_(std::move(keys)), states_(keys_.size()) {}

absl::StatusOr<int> ApiKeys::Authenticate(
    std::optional<std::string_view> authorization) const {
  constexpr std::string_view kBearer = "Bearer ";
  if (!authorization.has_value() || !authorization->starts_with(kBearer)) {
    return absl::UnauthenticatedError(
        "an API key is needed: send the metadata \"authorization: Bearer "
        "KEY\"");
  }
  const Digest digest = Sha256(authorization->substr(kBearer.size()));
  // Every key is compared, in constant time, so the time taken says
  // nothing about which key came close.
  int match = -1;
  for (size_t i = 0; i < keys_.size(); ++i) {
    if (CRYPTO_memcmp(digest.data(), keys_[i].sha256.data(), digest.size()) ==
        0) {
      match = static_cast<int>(i);
    }
  }
  if (match < 0) return absl::UnauthenticatedError("the API key is not known");
  return match;
}

absl::StatusOr<ApiKeys::Lease> ApiKeys::Admit(
    std::optional<std::string_view> authorization, absl::Time now) {
  absl::StatusOr<int> index = Authenticate(authorization);
  if (!index.ok()) return index.status();
  const Key& key = keys_[*index];
  std::lock_guard<std::mutex> lock(mutex_);
  State& state = states_[*index];
  if (key.max_in_flight > 0 && state.in_flight >= key.max_in_flight) {
    return absl::ResourceExhaustedError(
        absl::StrCat("API key ", key.name, " runs its max_in_flight of ",
                     key.max_in_flight, " requests; retry when one ends"));
  }
  Forget(state, now);
  if (key.tokens_per_minute > 0 &&
      state.recent_tokens >= key.tokens_per_minute) {
    return absl::ResourceExhaustedError(
        absl::StrCat("API key ", key.name, " used its tokens_per_minute of ",
                     key.tokens_per_minute, " (", state.recent_tokens,
                     " in the last minute)"));
  }
  ++state.in_flight;
  ++state.requests;
  return Lease(this, *index);
}

void ApiKeys::Release(int index) {
  std::lock_guard<std::mutex> lock(mutex_);
  --states_[index].in_flight;
}

void ApiKeys::AddTokens(int index, int64_t tokens, absl::Time now) {
  std::lock_guard<std::mutex> lock(mutex_);
  State& state = states_[index];
  state.tokens += tokens;
  state.recent.emplace_back(now, tokens);
  state.recent_tokens += tokens;
  Forget(state, now);
}

void ApiKeys::Forget(State& state, absl::Time now) {
  while (!state.recent.empty() && state.recent.front().first <= now - kWindow) {
    state.recent_tokens -= state.recent.front().second;
    state.recent.pop_front();
  }
}

std::vector<ApiKeys::Usage> ApiKeys::Snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<Usage> usage;
  for (size_t i = 0; i < keys_.size(); ++i) {
    usage.push_back({keys_[i].name, states_[i].requests, states_[i].tokens,
                     states_[i].in_flight});
  }
  return usage;
}

ApiKeys::Lease::~Lease() {
  if (keys_ != nullptr) keys_->Release(index_);
}

void ApiKeys::Lease::AddTokens(int64_t tokens) {
  if (keys_ != nullptr) keys_->AddTokens(index_, tokens, absl::Now());
}

}  // namespace moe

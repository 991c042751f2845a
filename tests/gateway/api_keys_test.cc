#include "gateway/api_keys.h"

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "core/util/file_util.h"
#include "gtest/gtest.h"
#include "tests/support/expect_has_substr.h"

namespace moe {
namespace {

// SHA-256 of "alpha-key", as `printf %s alpha-key | sha256sum` prints it.
std::string HexSha256(const std::string& key) {
  const ApiKeys::Digest digest = ApiKeys::Sha256(key);
  return absl::BytesToHexString(
      std::string(reinterpret_cast<const char*>(digest.data()), digest.size()));
}

std::string WriteKeys(const std::string& text) {
  const std::string path = ::testing::TempDir() + "/api_keys_test_keys";
  EXPECT_TRUE(WriteStringToFile(path, text).ok());
  return path;
}

TEST(ApiKeysTest, Sha256IsTheStandardOne) {
  // FIPS 180-2's first example.
  EXPECT_EQ(HexSha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(ApiKeysTest, AuthenticatesBearerKeysByTheirHash) {
  absl::StatusOr<std::unique_ptr<ApiKeys>> keys = ApiKeys::Load(WriteKeys(
      absl::StrCat("# clients\n\nalpha ", HexSha256("alpha-key"), "\nbeta ",
                   HexSha256("beta-key"), " max_in_flight=2\n")));
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ(*(*keys)->Authenticate("Bearer alpha-key"), 0);
  EXPECT_EQ(*(*keys)->Authenticate("Bearer beta-key"), 1);
  for (const char* wrong : {"Bearer gamma-key", "alpha-key", "Bearer ",
                            "Basic alpha-key", "Bearer alpha-key "}) {
    EXPECT_EQ((*keys)->Authenticate(wrong).status().code(),
              absl::StatusCode::kUnauthenticated)
        << wrong;
  }
  EXPECT_HAS_SUBSTR((*keys)->Authenticate(std::nullopt).status().message(),
                    "authorization: Bearer KEY");
}

TEST(ApiKeysTest, MaxInFlightHoldsWhileLeasesLive) {
  ApiKeys keys(
      {{.name = "a", .sha256 = ApiKeys::Sha256("k"), .max_in_flight = 1}});
  const absl::Time now = absl::Now();
  {
    absl::StatusOr<ApiKeys::Lease> first = keys.Admit("Bearer k", now);
    ASSERT_TRUE(first.ok());
    const absl::StatusOr<ApiKeys::Lease> second = keys.Admit("Bearer k", now);
    EXPECT_EQ(second.status().code(), absl::StatusCode::kResourceExhausted);
    EXPECT_HAS_SUBSTR(second.status().message(),
                      "API key a runs its max_in_flight of 1");
    EXPECT_EQ(keys.Snapshot()[0].in_flight, 1);
  }
  EXPECT_TRUE(keys.Admit("Bearer k", now).ok());
  EXPECT_EQ(keys.Snapshot()[0].requests, 2);
  EXPECT_EQ(keys.Snapshot()[0].in_flight, 0);
}

TEST(ApiKeysTest, TokensPerMinuteCountTheLastMinute) {
  ApiKeys keys({{.name = "a",
                 .sha256 = ApiKeys::Sha256("k"),
                 .tokens_per_minute = 100}});
  const absl::Time now = absl::Now();
  {
    absl::StatusOr<ApiKeys::Lease> lease = keys.Admit("Bearer k", now);
    ASSERT_TRUE(lease.ok());
    lease->AddTokens(60);
  }
  {
    absl::StatusOr<ApiKeys::Lease> lease = keys.Admit("Bearer k", now);
    ASSERT_TRUE(lease.ok());  // 60 < 100
    lease->AddTokens(40);
  }
  const absl::StatusOr<ApiKeys::Lease> over = keys.Admit("Bearer k", now);
  EXPECT_EQ(over.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_HAS_SUBSTR(over.status().message(),
                    "API key a used its tokens_per_minute of 100 (100 in the "
                    "last minute)");
  // A minute later the tokens are forgotten; the total stays.
  EXPECT_TRUE(keys.Admit("Bearer k", now + absl::Seconds(61)).ok());
  EXPECT_EQ(keys.Snapshot()[0].tokens, 100);
}

TEST(ApiKeysTest, BadFilesAreNamedByLine) {
  const std::string hash = HexSha256("k");
  struct Case {
    std::string text;
    std::string message;
  } cases[] = {
      {"", "has no key"},
      {"alpha\n", "line 1: expected NAME SHA256-HEX"},
      {"# ok\nalpha 1234\n", "line 2: key alpha: the SHA-256 is not 64"},
      {absl::StrCat("alpha ", hash, " max_in_flight=x\n"),
       "line 1: key alpha: \"max_in_flight=x\" is not LIMIT=N"},
      {absl::StrCat("alpha ", hash, " rate=3\n"), "unknown limit \"rate\""},
      {absl::StrCat("alpha ", hash, "\nalpha ", hash, "\n"),
       "line 2: key alpha is named twice"},
  };
  for (const Case& c : cases) {
    EXPECT_HAS_SUBSTR(ApiKeys::Load(WriteKeys(c.text)).status().message(),
                      c.message);
  }
  EXPECT_HAS_SUBSTR(ApiKeys::Load("/no/such/keys").status().message(),
                    "--api-keys: cannot read /no/such/keys");
}

}  // namespace
}  // namespace moe

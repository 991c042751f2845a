#include "gateway/generate_request.h"

#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "tests/support/expect_has_substr.h"
#include "tests/support/test_models.h"

namespace moe {
namespace {

constexpr size_t kMaxPromptBytes = 4096;

class GenerateRequestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const testing::TestModelSpec spec;
    config_ = spec.Config();
    auto tokenizer = LoadTokenizer(testing::MakeTestModel(spec), config_);
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_ = std::move(*tokenizer);
  }

  static v1::GenerateRequest Valid() {
    v1::GenerateRequest request;
    request.set_text("Permission is granted");
    request.set_max_tokens(8);
    return request;
  }

  // The request made invalid by `change` fails with INVALID_ARGUMENT naming
  // `field`.
  void ExpectInvalid(const std::function<void(v1::GenerateRequest&)>& change,
                     const std::string& field) {
    v1::GenerateRequest request = Valid();
    change(request);
    absl::StatusOr<v1::RouterGenerateRequest> result =
        ToRouterRequest(request, config_, *tokenizer_, kMaxPromptBytes);
    ASSERT_FALSE(result.ok()) << field;
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_HAS_SUBSTR(result.status().message(), field + ":");
  }

  ModelConfig config_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

TEST_F(GenerateRequestTest, TextIsTokenizedWithBos) {
  v1::GenerateRequest request = Valid();
  request.set_request_id("abc");
  request.set_ignore_eos(true);
  auto router = ToRouterRequest(request, config_, *tokenizer_, kMaxPromptBytes);
  ASSERT_TRUE(router.ok()) << router.status();
  auto expected = tokenizer_->EncodePrompt("Permission is granted");
  ASSERT_TRUE(expected.ok());
  ASSERT_EQ(expected->front(), config_.bos_token_id);
  EXPECT_EQ(std::vector<int32_t>(router->prompt_token_ids().begin(),
                                 router->prompt_token_ids().end()),
            *expected);
  EXPECT_EQ(router->request_id(), "abc");
  EXPECT_EQ(router->max_tokens(), 8);
  EXPECT_TRUE(router->ignore_eos());
}

TEST_F(GenerateRequestTest, TokenIdsAreUsedAsTheyAre) {
  v1::GenerateRequest request = Valid();
  request.mutable_token_ids()->add_ids(5);
  request.mutable_token_ids()->add_ids(399);
  auto router = ToRouterRequest(request, config_, *tokenizer_, kMaxPromptBytes);
  ASSERT_TRUE(router.ok()) << router.status();
  EXPECT_EQ(std::vector<int32_t>(router->prompt_token_ids().begin(),
                                 router->prompt_token_ids().end()),
            (std::vector<int32_t>{5, 399}));
}

TEST_F(GenerateRequestTest, UnsetSamplingFieldsGetTheirDefaults) {
  auto router = ToRouterRequest(Valid(), config_, *tokenizer_, kMaxPromptBytes);
  ASSERT_TRUE(router.ok());
  EXPECT_EQ(router->sampling().temperature(), 1.0f);
  EXPECT_EQ(router->sampling().top_p(), 1.0f);
  EXPECT_EQ(router->sampling().top_k(), 0);
  EXPECT_LT(router->sampling().seed(), 0);  // the router draws one
}

TEST_F(GenerateRequestTest, SetSamplingFieldsPassThrough) {
  v1::GenerateRequest request = Valid();
  request.set_temperature(0);
  request.set_top_p(0.5f);
  request.set_top_k(7);
  request.set_seed(0);
  auto router = ToRouterRequest(request, config_, *tokenizer_, kMaxPromptBytes);
  ASSERT_TRUE(router.ok());
  EXPECT_EQ(router->sampling().temperature(), 0.0f);
  EXPECT_EQ(router->sampling().top_p(), 0.5f);
  EXPECT_EQ(router->sampling().top_k(), 7);
  EXPECT_EQ(router->sampling().seed(), 0);
}

TEST_F(GenerateRequestTest, NegativeSeedsStayReproducible) {
  v1::GenerateRequest request = Valid();
  request.set_seed(-5);
  auto router = ToRouterRequest(request, config_, *tokenizer_, kMaxPromptBytes);
  ASSERT_TRUE(router.ok());
  EXPECT_GE(router->sampling().seed(), 0);
}

TEST_F(GenerateRequestTest, EveryInvalidFieldIsNamed) {
  using R = v1::GenerateRequest;
  ExpectInvalid([](R& r) { r.clear_prompt(); }, "prompt");
  ExpectInvalid([](R& r) { r.set_text(""); }, "text");
  ExpectInvalid([](R& r) { r.set_text(std::string(kMaxPromptBytes + 1, 'a')); },
                "text");
  ExpectInvalid([](R& r) { r.mutable_token_ids(); }, "token_ids");
  ExpectInvalid([](R& r) { r.mutable_token_ids()->add_ids(400); }, "token_ids");
  ExpectInvalid([](R& r) { r.mutable_token_ids()->add_ids(-1); }, "token_ids");
  ExpectInvalid(
      [](R& r) {
        for (int i = 0; i < 512; ++i) r.mutable_token_ids()->add_ids(5);
      },
      "prompt");
  ExpectInvalid([](R& r) { r.set_max_tokens(0); }, "max_tokens");
  ExpectInvalid([](R& r) { r.set_max_tokens(-3); }, "max_tokens");
  ExpectInvalid([](R& r) { r.set_max_tokens(512); }, "max_tokens");
  ExpectInvalid([](R& r) { r.set_temperature(-0.1f); }, "temperature");
  ExpectInvalid([](R& r) { r.set_temperature(std::nanf("")); }, "temperature");
  ExpectInvalid(
      [](R& r) { r.set_temperature(std::numeric_limits<float>::infinity()); },
      "temperature");
  ExpectInvalid([](R& r) { r.set_top_p(0); }, "top_p");
  ExpectInvalid([](R& r) { r.set_top_p(1.01f); }, "top_p");
  ExpectInvalid([](R& r) { r.set_top_p(std::nanf("")); }, "top_p");
  ExpectInvalid([](R& r) { r.set_top_k(-1); }, "top_k");
  ExpectInvalid([](R& r) { r.add_stop(""); }, "stop");
  ExpectInvalid([](R& r) { r.add_stop(std::string(257, 'x')); }, "stop");
  ExpectInvalid(
      [](R& r) {
        for (int i = 0; i < 9; ++i) r.add_stop("s");
      },
      "stop");
  ExpectInvalid([](R& r) { r.set_request_id(std::string(129, 'i')); },
                "request_id");
}

TEST_F(GenerateRequestTest, APromptTooLongInBytesNamesTheFlag) {
  const absl::Status status = CheckPromptBytes(
      "text", std::string(kMaxPromptBytes + 1, 'a'), kMaxPromptBytes);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_HAS_SUBSTR(status.message(), "text: 4097 bytes");
  EXPECT_HAS_SUBSTR(status.message(), "--max-prompt-bytes");
  EXPECT_TRUE(CheckPromptBytes("text", std::string(kMaxPromptBytes, 'a'),
                               kMaxPromptBytes)
                  .ok());
}

TEST_F(GenerateRequestTest, LimitsAreInclusive) {
  v1::GenerateRequest request = Valid();
  for (int i = 0; i < 8; ++i) request.add_stop(std::string(256, 'a' + i));
  request.set_request_id(std::string(128, 'i'));
  request.set_top_p(1.0f);
  request.clear_prompt();
  request.mutable_token_ids()->add_ids(1);
  request.set_max_tokens(511);  // 1 + 511 = the context of 512
  EXPECT_TRUE(
      ToRouterRequest(request, config_, *tokenizer_, kMaxPromptBytes).ok());
}

}  // namespace
}  // namespace moe

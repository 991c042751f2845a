// moe-bench's pure parts: percentiles and summaries (against a naive
// computation), the length flags, the request source, the load options and
// the report.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/expect_has_substr.h"
#include "tools/moe_bench/bench_report.h"
#include "tools/moe_bench/latency_summary.h"
#include "tools/moe_bench/length_distribution.h"
#include "tools/moe_bench/load_generator.h"
#include "tools/moe_bench/request_source.h"

namespace moe {
namespace {

// The definition, computed the slow way on unsorted values: the smallest value
// v such that at least `percent`% of the values are <= v.
double NaivePercentile(const std::vector<double>& values, double percent) {
  double best = 0;
  bool found = false;
  for (double candidate : values) {
    size_t at_most = 0;
    for (double value : values) at_most += value <= candidate ? 1 : 0;
    if (static_cast<double>(at_most) * 100 >=
            percent * static_cast<double>(values.size()) &&
        (!found || candidate < best)) {
      best = candidate;
      found = true;
    }
  }
  return best;
}

TEST(NearestRankPercentileTest, MatchesTheTextbookExample) {
  // Nearest-rank example from the literature: 15, 20, 35, 40, 50.
  const std::vector<double> sorted = {15, 20, 35, 40, 50};
  EXPECT_EQ(NearestRankPercentile(sorted, 5), 15);
  EXPECT_EQ(NearestRankPercentile(sorted, 30), 20);
  EXPECT_EQ(NearestRankPercentile(sorted, 40), 20);
  EXPECT_EQ(NearestRankPercentile(sorted, 50), 35);
  EXPECT_EQ(NearestRankPercentile(sorted, 100), 50);
  EXPECT_EQ(NearestRankPercentile(sorted, 0), 15);
}

TEST(NearestRankPercentileTest, MatchesTheNaiveDefinitionOnRandomValues) {
  std::mt19937_64 rng(7);
  for (int size : {1, 2, 3, 7, 10, 99, 100, 101, 1000}) {
    std::vector<double> values(size);
    // Few distinct values, so that ties are common.
    std::uniform_int_distribution<int> draw(0, size / 3 + 1);
    for (double& value : values) value = draw(rng) * 0.25;
    std::vector<double> sorted = values;
    std::sort(sorted.begin(), sorted.end());
    for (double percent : {0.0, 1.0, 12.5, 25.0, 50.0, 90.0, 99.0, 100.0}) {
      EXPECT_EQ(NearestRankPercentile(sorted, percent),
                NaivePercentile(values, percent))
          << "size " << size << ", p" << percent;
    }
  }
}

TEST(SummarizeTest, GivesCountMeanExtremesAndPercentiles) {
  std::mt19937_64 rng(11);
  std::exponential_distribution<double> latency(20.0);
  std::vector<double> values(257);
  for (double& value : values) value = latency(rng);
  const LatencySummary summary = Summarize(values);  // unsorted input
  double sum = 0;
  for (double value : values) sum += value;
  EXPECT_EQ(summary.count, 257);
  EXPECT_DOUBLE_EQ(summary.mean, sum / 257);
  EXPECT_EQ(summary.min, *std::min_element(values.begin(), values.end()));
  EXPECT_EQ(summary.max, *std::max_element(values.begin(), values.end()));
  EXPECT_EQ(summary.p50, NaivePercentile(values, 50));
  EXPECT_EQ(summary.p90, NaivePercentile(values, 90));
  EXPECT_EQ(summary.p99, NaivePercentile(values, 99));
  EXPECT_LT(summary.p50, summary.p90);
  EXPECT_LT(summary.p90, summary.p99);
}

TEST(SummarizeTest, IsEmptyWithoutValues) {
  const LatencySummary summary = Summarize({});
  EXPECT_EQ(summary.count, 0);
  EXPECT_EQ(summary.mean, 0);
  EXPECT_EQ(summary.p99, 0);
}

TEST(LengthDistributionTest, ParsesFixedAndUniform) {
  absl::StatusOr<LengthDistribution> fixed =
      ParseLengthDistribution("6", "--output-tokens");
  ASSERT_TRUE(fixed.ok()) << fixed.status();
  EXPECT_EQ(fixed->min, 6);
  EXPECT_EQ(fixed->max, 6);
  EXPECT_EQ(fixed->ToString(), "6");

  absl::StatusOr<LengthDistribution> uniform =
      ParseLengthDistribution("uniform:4:12", "--prompt-tokens");
  ASSERT_TRUE(uniform.ok()) << uniform.status();
  EXPECT_EQ(uniform->min, 4);
  EXPECT_EQ(uniform->max, 12);
  EXPECT_EQ(uniform->ToString(), "uniform:4:12");

  absl::StatusOr<LengthDistribution> single =
      ParseLengthDistribution("uniform:5:5", "--prompt-tokens");
  ASSERT_TRUE(single.ok()) << single.status();
  EXPECT_EQ(single->min, 5);
  EXPECT_EQ(single->max, 5);
}

TEST(LengthDistributionTest, RejectsBadValuesNamingTheFlagAndTheValue) {
  const std::map<std::string, std::string> why = {
      {"", "is not a token count"},
      {"abc", "is not a token count"},
      {"0", "is below 1"},
      {"-3", "is below 1"},
      {"1.5", "is not a token count"},
      {"99999999999", "is not a token count"},  // beyond int32
      {"normal:4:8", "is not a token count"},
      {"uniform:4", "is not uniform:MIN:MAX"},
      {"uniform:4:8:9", "is not uniform:MIN:MAX"},
      {"uniform:a:8", "is not uniform:MIN:MAX"},
      {"uniform:0:8", "has MIN below 1"},
      {"uniform:12:4", "has MIN above MAX"},
  };
  for (const auto& [text, reason] : why) {
    const absl::StatusOr<LengthDistribution> parsed =
        ParseLengthDistribution(text, "--prompt-tokens");
    ASSERT_FALSE(parsed.ok()) << text;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    const std::string message(parsed.status().message());
    EXPECT_HAS_SUBSTR(message, "--prompt-tokens: \"" + text + "\" " + reason);
    EXPECT_HAS_SUBSTR(message, "expected N or uniform:MIN:MAX");
  }
}

TEST(LengthDistributionTest, SamplesEveryLengthOfTheRangeAndNothingElse) {
  const LengthDistribution uniform{3, 7};
  std::mt19937_64 rng(1);
  std::set<int32_t> seen;
  for (int i = 0; i < 1000; ++i) {
    const int32_t length = uniform.Sample(rng);
    ASSERT_GE(length, 3);
    ASSERT_LE(length, 7);
    seen.insert(length);
  }
  EXPECT_EQ(seen, (std::set<int32_t>{3, 4, 5, 6, 7}));
  EXPECT_EQ((LengthDistribution{9, 9}).Sample(rng), 9);
}

ModelLimits Limits() {
  ModelLimits limits;
  limits.vocab_size = 500;
  limits.context_length = 64;
  limits.special_token_ids = {1, 2, 250, 499};
  return limits;
}

TEST(RequestSourceTest, RefusesLengthsBeyondTheContextNamingBothFlags) {
  const absl::StatusOr<RequestSource> source =
      RequestSource::Create({4, 40}, {25, 25}, Limits(), 1);
  ASSERT_FALSE(source.ok());
  EXPECT_EQ(source.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(source.status().message());
  EXPECT_HAS_SUBSTR(message, "--prompt-tokens uniform:4:40");
  EXPECT_HAS_SUBSTR(message, "--output-tokens 25");
  EXPECT_HAS_SUBSTR(message, "40 + 25 = 65");
  EXPECT_HAS_SUBSTR(message, "context length of 64");
  // Exactly the context length fits.
  EXPECT_TRUE(RequestSource::Create({4, 40}, {24, 24}, Limits(), 1).ok());
}

TEST(RequestSourceTest, RefusesAVocabularyWithNoOrdinaryToken) {
  ModelLimits limits = Limits();
  limits.vocab_size = 2;  // 0 is below the lowest prompt id, 1 is special
  limits.special_token_ids = {1};
  const absl::StatusOr<RequestSource> source =
      RequestSource::Create({1, 1}, {1, 1}, limits, 1);
  ASSERT_FALSE(source.ok());
  EXPECT_HAS_SUBSTR(source.status().message(), "no ordinary token id");
}

TEST(RequestSourceTest, MakesGreedyIgnoreEosRequestsOfRandomOrdinaryIds) {
  absl::StatusOr<RequestSource> source =
      RequestSource::Create({4, 12}, {2, 6}, Limits(), 3);
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_EQ(source->lowest_token_id(), kLowestPromptTokenId);
  std::set<int> prompt_lengths;
  std::set<int> output_lengths;
  std::set<int32_t> ids;
  for (int i = 0; i < 300; ++i) {
    const v1::GenerateRequest request = source->Next();
    ASSERT_TRUE(request.has_token_ids());
    ASSERT_TRUE(request.has_temperature());
    EXPECT_EQ(request.temperature(), 0);
    EXPECT_TRUE(request.ignore_eos());
    EXPECT_EQ(request.stop_size(), 0);
    prompt_lengths.insert(request.token_ids().ids_size());
    output_lengths.insert(request.max_tokens());
    for (int32_t id : request.token_ids().ids()) {
      ASSERT_GE(id, kLowestPromptTokenId);
      ASSERT_LT(id, 500);
      ASSERT_NE(id, 250);  // special
      ASSERT_NE(id, 499);  // special
      ids.insert(id);
    }
  }
  EXPECT_EQ(*prompt_lengths.begin(), 4);
  EXPECT_EQ(*prompt_lengths.rbegin(), 12);
  EXPECT_EQ(prompt_lengths.size(), 9u);
  EXPECT_EQ(output_lengths, (std::set<int>{2, 3, 4, 5, 6}));
  EXPECT_GT(ids.size(), 300u);  // of 398 ordinary ids, most were drawn
}

TEST(RequestSourceTest, TheSeedDecidesTheRequests) {
  auto requests = [](uint64_t seed) {
    RequestSource source =
        *RequestSource::Create({1, 20}, {1, 9}, Limits(), seed);
    std::vector<std::string> serialized;
    for (int i = 0; i < 5; ++i) {
      serialized.push_back(source.Next().SerializeAsString());
    }
    return serialized;
  };
  EXPECT_EQ(requests(5), requests(5));
  EXPECT_NE(requests(5), requests(6));
}

TEST(RequestSourceTest, KeepsPromptIdsInASmallVocabulary) {
  ModelLimits limits = Limits();
  limits.vocab_size = 40;  // below 2 * kLowestPromptTokenId
  absl::StatusOr<RequestSource> source =
      RequestSource::Create({8, 8}, {1, 1}, limits, 1);
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_EQ(source->lowest_token_id(), 20);
  const v1::GenerateRequest request = source->Next();
  ASSERT_EQ(request.token_ids().ids_size(), 8);
  for (int32_t id : request.token_ids().ids()) {
    EXPECT_GE(id, 20);
    EXPECT_LT(id, 40);
  }
}

LoadOptions ValidOptions() {
  LoadOptions options;
  options.concurrency = 4;
  options.max_requests = 8;
  return options;
}

TEST(ValidateLoadOptionsTest, AcceptsClosedAndOpenLoops) {
  EXPECT_TRUE(ValidateLoadOptions(ValidOptions()).ok());
  LoadOptions open = ValidOptions();
  open.rate = 2.5;
  open.concurrency = 0;  // no cap
  open.max_requests = 0;
  open.duration = absl::Seconds(3);
  EXPECT_TRUE(ValidateLoadOptions(open).ok());
}

TEST(ValidateLoadOptionsTest, NamesTheFlagAtFault) {
  const std::vector<std::pair<void (*)(LoadOptions&), std::string>> cases = {
      {[](LoadOptions& o) { o.concurrency = 0; }, "--concurrency"},
      {[](LoadOptions& o) { o.concurrency = -1; }, "--concurrency"},
      {[](LoadOptions& o) { o.rate = -1; }, "--rate"},
      {[](LoadOptions& o) { o.rate = std::numeric_limits<double>::infinity(); },
       "--rate"},
      {[](LoadOptions& o) { o.max_requests = -2; }, "--requests"},
      {[](LoadOptions& o) { o.max_requests = 0; },
       "give --requests N and/or --duration SECONDS"},
      {[](LoadOptions& o) { o.duration = absl::Seconds(-1); }, "--duration"},
      {[](LoadOptions& o) { o.duration = absl::InfiniteDuration(); },
       "--duration"},
      {[](LoadOptions& o) { o.warmup = -1; }, "--warmup"},
      {[](LoadOptions& o) { o.request_timeout = absl::ZeroDuration(); },
       "--request-timeout"},
  };
  for (const auto& [change, flag] : cases) {
    LoadOptions options = ValidOptions();
    change(options);
    const absl::Status status = ValidateLoadOptions(options);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << flag;
    EXPECT_HAS_SUBSTR(status.message(), flag);
  }
}

RequestRecord Completed(double ttft, std::vector<double> itl, double e2e,
                        int prompt, int output) {
  RequestRecord record;
  record.time_to_first_token = ttft;
  record.inter_token = std::move(itl);
  record.end_to_end = e2e;
  record.prompt_tokens = prompt;
  record.output_tokens = output;
  return record;
}

RequestRecord Failed(absl::Status status) {
  RequestRecord record;
  record.status = std::move(status);
  record.end_to_end = 0.001;
  record.output_tokens = 2;  // streamed before failing: not counted
  return record;
}

BenchReport SampleReport() {
  LoadResult result;
  result.wall_seconds = 2;
  result.warmup_failed = 1;
  result.measured = {
      Completed(0.010, {0.002, 0.004}, 0.020, 5, 3),
      Failed(absl::UnavailableError("worker w0 failed")),
      Completed(0.030, {0.006, 0.006}, 0.050, 7, 3),
      Failed(absl::DeadlineExceededError("deadline")),
      Failed(absl::UnavailableError("worker w1 failed")),
      Completed(0.020, {}, 0.030, 9, 1),
  };
  BenchSettings settings;
  settings.address = "127.0.0.1:9";
  settings.model = "tiny";
  settings.context_length = 64;
  settings.load = ValidOptions();
  settings.prompt_tokens = {4, 12};
  settings.output_tokens = {6, 6};
  return BuildReport(settings, result);
}

TEST(BenchReportTest, CountsCompletedRequestsAndErrorsByCode) {
  const BenchReport report = SampleReport();
  EXPECT_EQ(report.completed, 3);
  EXPECT_EQ(report.failed, 3);
  EXPECT_EQ(report.warmup_failed, 1);
  ASSERT_EQ(report.errors.size(), 2u);
  EXPECT_EQ(report.errors.at("UNAVAILABLE").count, 2);
  EXPECT_EQ(report.errors.at("UNAVAILABLE").first_message, "worker w0 failed");
  EXPECT_EQ(report.errors.at("DEADLINE_EXCEEDED").count, 1);
  EXPECT_EQ(report.prompt_tokens, 21);
  EXPECT_EQ(report.output_tokens, 7);
  EXPECT_DOUBLE_EQ(report.requests_per_second(), 1.5);
  EXPECT_DOUBLE_EQ(report.output_tokens_per_second(), 3.5);
  EXPECT_EQ(report.time_to_first_token.count, 3);
  EXPECT_DOUBLE_EQ(report.time_to_first_token.p50, 0.020);
  EXPECT_DOUBLE_EQ(report.time_to_first_token.mean, 0.020);
  EXPECT_EQ(report.inter_token.count, 4);
  EXPECT_DOUBLE_EQ(report.inter_token.p50, 0.004);
  EXPECT_DOUBLE_EQ(report.inter_token.p99, 0.006);
  EXPECT_EQ(report.end_to_end.count, 3);
  EXPECT_DOUBLE_EQ(report.end_to_end.p90, 0.050);
}

TEST(BenchReportTest, JsonHoldsTheCountsTheSettingsAndMilliseconds) {
  const nlohmann::json json = ReportToJson(SampleReport());
  EXPECT_EQ(json["completed"], 3);
  EXPECT_EQ(json["failed"], 3);
  EXPECT_EQ(json["errors"],
            nlohmann::json({{"UNAVAILABLE", 2}, {"DEADLINE_EXCEEDED", 1}}));
  EXPECT_EQ(json["first_error_messages"]["UNAVAILABLE"], "worker w0 failed");
  EXPECT_EQ(json["output_tokens"], 7);
  EXPECT_EQ(json["prompt_tokens"], 21);
  EXPECT_DOUBLE_EQ(json["output_tokens_per_s"].get<double>(), 3.5);
  EXPECT_DOUBLE_EQ(json["ttft_ms"]["p50"].get<double>(), 20);
  EXPECT_DOUBLE_EQ(json["itl_ms"]["p99"].get<double>(), 6);
  EXPECT_DOUBLE_EQ(json["e2e_latency_ms"]["p99"].get<double>(), 50);
  EXPECT_EQ(json["settings"]["prompt_tokens"], "uniform:4:12");
  EXPECT_EQ(json["settings"]["output_tokens"], "6");
  EXPECT_EQ(json["settings"]["concurrency"], 4);
  EXPECT_EQ(json["settings"]["mode"], "closed_loop");
  EXPECT_TRUE(json["settings"]["rate"].is_null());
}

TEST(BenchReportTest, JsonHasNullLatenciesWithoutCompletedRequests) {
  LoadResult result;
  result.wall_seconds = 1;
  result.measured = {Failed(absl::UnavailableError("down"))};
  const nlohmann::json json = ReportToJson(BuildReport({}, result));
  EXPECT_EQ(json["ttft_ms"]["count"], 0);
  EXPECT_TRUE(json["ttft_ms"]["p50"].is_null());
  EXPECT_EQ(json["completed"], 0);
  EXPECT_EQ(json["errors"]["UNAVAILABLE"], 1);
}

TEST(BenchReportTest, WritesMessagesThatAreNotUtf8) {
  LoadResult result;
  result.measured = {Failed(absl::InternalError("bad \xff byte"))};
  const std::string path = ::testing::TempDir() + "/bench_report.json";
  ASSERT_TRUE(WriteJsonReport(BuildReport({}, result), path).ok());
  std::ifstream in(path);
  const nlohmann::json json = nlohmann::json::parse(in);
  EXPECT_HAS_SUBSTR(json["first_error_messages"]["INTERNAL"].get<std::string>(),
                    "bad ");
  std::remove(path.c_str());
}

TEST(BenchReportTest, WriteNamesTheFlagAndTheFileItCannotWrite) {
  const absl::Status status =
      WriteJsonReport(SampleReport(), "/nonexistent-dir/report.json");
  EXPECT_HAS_SUBSTR(status.message(),
                    "--json: cannot write "
                    "/nonexistent-dir/report.json");
}

TEST(BenchReportTest, TableShowsCountsLatenciesAndFirstErrors) {
  const std::string table = FormatReportTable(SampleReport());
  EXPECT_HAS_SUBSTR(table, "3 completed, 3 failed");
  EXPECT_HAS_SUBSTR(table, "1.50 requests/s, 3.5 output tokens/s");
  EXPECT_HAS_SUBSTR(table, "prompt tokens uniform:4:12, output tokens 6");
  EXPECT_HAS_SUBSTR(table, "closed loop, concurrency 4");
  EXPECT_HAS_SUBSTR(table, "UNAVAILABLE");
  EXPECT_HAS_SUBSTR(table, "worker w0 failed");
  EXPECT_EQ(table.find("worker w1 failed"), std::string::npos);
  EXPECT_HAS_SUBSTR(table, "time to first token");
}

}  // namespace
}  // namespace moe

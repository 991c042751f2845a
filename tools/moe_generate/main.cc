// moe-generate: one-process generation with every expert in process.
#include <cstdio>
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "core/incremental_detokenizer.h"
#include "core/model_weights.h"
#include "core/thread_pool.h"
#include "core/tokenizer.h"
#include "router_service/generation.h"
#include "router_service/local_expert_dispatch.h"
#include "tools/command_line.h"
#include "tools/npy.h"

ABSL_FLAG(std::string, model, "", "checkpoint directory (required)");
ABSL_FLAG(std::string, prompt, "", "prompt text");
ABSL_FLAG(std::string, prompt_ids, "",
          "prompt as comma-separated token ids (instead of --prompt)");
ABSL_FLAG(int, max_tokens, 32, "tokens to generate");
ABSL_FLAG(double, temperature, 0.0, "sampling temperature; 0 is greedy");
ABSL_FLAG(int, top_k, 0, "sample among the k most likely tokens; 0: all");
ABSL_FLAG(double, top_p, 1.0, "nucleus sampling mass, in (0, 1]");
ABSL_FLAG(int64_t, seed, -1, "sampling seed; -1: random");
ABSL_FLAG(bool, ignore_eos, false, "keep generating after EOS");
ABSL_FLAG(int, threads, 0, "compute threads; 0: one per core");
ABSL_FLAG(std::string, logits_out, "",
          "write the prompt's teacher-forced logits [tokens, vocab] as float32 "
          ".npy and exit");

namespace {

int Fail(const absl::Status& status) {
  std::cerr << "moe-generate: " << status.message() << "\n";
  return 1;
}

absl::StatusOr<std::vector<int32_t>> ParseIds(const std::string& text) {
  std::vector<int32_t> ids;
  for (absl::string_view part :
       absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    int32_t id;
    if (!absl::SimpleAtoi(part, &id)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--prompt-ids: \"", part, "\" is not a token id"));
    }
    ids.push_back(id);
  }
  return ids;
}

}  // namespace

int main(int argc, char** argv) {
  moe::ParseCommandLine(
      argc, argv,
      "moe-generate --model DIR --prompt TEXT [--max-tokens N "
      "--temperature T --top-k K --top-p P --seed S]");
  const std::string dir = absl::GetFlag(FLAGS_model);
  if (dir.empty())
    return Fail(absl::InvalidArgumentError("--model is required"));
  auto weights = moe::ModelWeights::Load(dir);
  if (!weights.ok()) return Fail(weights.status());
  std::unique_ptr<moe::Tokenizer> tokenizer;
  std::vector<int32_t> prompt;
  if (!absl::GetFlag(FLAGS_prompt_ids).empty()) {
    auto ids = ParseIds(absl::GetFlag(FLAGS_prompt_ids));
    if (!ids.ok()) return Fail(ids.status());
    prompt = *ids;
  }
  if (absl::GetFlag(FLAGS_logits_out).empty() || prompt.empty()) {
    auto loaded = moe::LoadTokenizer(dir, (*weights)->config());
    if (!loaded.ok()) return Fail(loaded.status());
    tokenizer = std::move(*loaded);
  }
  if (prompt.empty()) {
    if (absl::GetFlag(FLAGS_prompt).empty()) {
      return Fail(
          absl::InvalidArgumentError("--prompt or --prompt-ids is required"));
    }
    auto ids = tokenizer->EncodePrompt(absl::GetFlag(FLAGS_prompt));
    if (!ids.ok()) return Fail(ids.status());
    prompt = *ids;
  }
  moe::ThreadPool pool(absl::GetFlag(FLAGS_threads));
  moe::LocalExpertDispatch experts(**weights, pool);
  moe::ModelRunner runner(**weights, experts, pool);

  if (!absl::GetFlag(FLAGS_logits_out).empty()) {
    moe::SequenceKvCache cache = runner.NewCache();
    auto logits = runner.Forward(prompt, cache, moe::LogitsFor::kAllTokens);
    if (!logits.ok()) return Fail(logits.status());
    const absl::Status written = moe::WriteNpyFloat32(
        absl::GetFlag(FLAGS_logits_out), *logits,
        {static_cast<int64_t>(prompt.size()), (*weights)->config().vocab_size});
    return written.ok() ? 0 : Fail(written);
  }

  moe::GenerationRequest request;
  request.prompt = prompt;
  request.max_tokens = absl::GetFlag(FLAGS_max_tokens);
  request.stop_on_eos = !absl::GetFlag(FLAGS_ignore_eos);
  request.sampling.temperature =
      static_cast<float>(absl::GetFlag(FLAGS_temperature));
  request.sampling.top_k = absl::GetFlag(FLAGS_top_k);
  request.sampling.top_p = static_cast<float>(absl::GetFlag(FLAGS_top_p));
  if (absl::GetFlag(FLAGS_seed) >= 0) {
    request.sampling.seed = static_cast<uint64_t>(absl::GetFlag(FLAGS_seed));
  }
  moe::IncrementalDetokenizer detokenizer(*tokenizer, prompt);
  absl::Status stream_status;
  auto result = moe::Generate(runner, request, [&](int32_t token) {
    if (!stream_status.ok()) return;
    auto text = detokenizer.Append(token);
    if (!text.ok()) {
      stream_status = text.status();
      return;
    }
    std::fwrite(text->data(), 1, text->size(), stdout);
    std::fflush(stdout);
  });
  if (!result.ok()) return Fail(result.status());
  if (!stream_status.ok()) return Fail(stream_status);
  auto rest = detokenizer.Flush();
  if (!rest.ok()) return Fail(rest.status());
  std::cout << *rest << std::endl;
  const size_t decoded = result->tokens.size() - 1;
  std::cerr << absl::StrFormat(
      "prefill %.1f tok/s, decode %.1f tok/s\n",
      prompt.size() / std::max(result->prefill_seconds, 1e-9),
      decoded > 0 ? decoded / std::max(result->decode_seconds, 1e-9) : 0.0);
  return 0;
}

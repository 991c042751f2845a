// moe-generate: generation for one prompt in one process, with the experts
// in process or on expert workers.
#include <iostream>
#include <optional>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "core/model/model_weights.h"
#include "core/tokenizer/incremental_detokenizer.h"
#include "core/tokenizer/tokenizer.h"
#include "core/util/command_line.h"
#include "core/util/status_macros.h"
#include "core/util/thread_pool.h"
#include "engine/generation.h"
#include "router_service/batch_generate.h"
#include "router_service/engine_flags.h"
#include "router_service/expert_backend.h"
#include "router_service/expert_backend_flags.h"
#include "tools/moe_generate/npy.h"

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
ABSL_FLAG(bool, output_ids, false,
          "print the new token ids (comma-separated) instead of text; needs no "
          "tokenizer with --prompt-ids");
ABSL_FLAG(int, batch, 1,
          "run this many copies of the request as one batch and report the "
          "aggregate decode speed instead of printing text");
ABSL_FLAG(std::string, logits_out, "",
          "write the prompt's teacher-forced logits [tokens, vocab] as float32 "
          ".npy and exit");

namespace {

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

// The prompt's token ids: --prompt-ids, or --prompt through the tokenizer.
absl::StatusOr<std::vector<int32_t>> PromptIds(
    const moe::Tokenizer* tokenizer) {
  if (!absl::GetFlag(FLAGS_prompt_ids).empty()) {
    return ParseIds(absl::GetFlag(FLAGS_prompt_ids));
  }
  if (absl::GetFlag(FLAGS_prompt).empty()) {
    return absl::InvalidArgumentError("--prompt or --prompt-ids is required");
  }
  return tokenizer->EncodePrompt(absl::GetFlag(FLAGS_prompt));
}

absl::Status WriteLogits(moe::ModelRunner& runner,
                         const std::vector<int32_t>& prompt) {
  moe::SequenceKvCache cache = runner.NewCache();
  MOE_ASSIGN_OR_RETURN(
      std::vector<float> logits,
      runner.Forward(prompt, cache, moe::LogitsFor::kAllTokens));
  return moe::WriteNpyFloat32(
      absl::GetFlag(FLAGS_logits_out), logits,
      {static_cast<int64_t>(prompt.size()), runner.config().vocab_size});
}

moe::GenerationRequest RequestFromFlags(const std::vector<int32_t>& prompt) {
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
  return request;
}

// Generates, streaming the new text (or ids) to stdout as it comes, and
// reports the speed on stderr.
absl::Status GenerateToStdout(moe::ModelRunner& runner,
                              const moe::Tokenizer* tokenizer,
                              const std::vector<int32_t>& prompt) {
  std::optional<moe::IncrementalDetokenizer> detokenizer;
  if (tokenizer != nullptr) detokenizer.emplace(*tokenizer, prompt);
  std::string separator;
  auto on_token = [&](int32_t token) -> absl::Status {
    if (!detokenizer.has_value()) {
      std::cout << separator << token << std::flush;
      separator = ",";
      return absl::OkStatus();
    }
    MOE_ASSIGN_OR_RETURN(const std::string text, detokenizer->Append(token));
    std::cout << text << std::flush;
    return absl::OkStatus();
  };
  MOE_ASSIGN_OR_RETURN(
      moe::GenerationResult result,
      moe::Generate(runner, RequestFromFlags(prompt), on_token));
  if (detokenizer.has_value()) {
    MOE_ASSIGN_OR_RETURN(std::string rest, detokenizer->Flush());
    std::cout << rest;
  }
  std::cout << std::endl;
  const size_t decoded = result.tokens.size() - 1;
  std::cerr << absl::StrFormat(
      "prefill %.1f tok/s, decode %.1f tok/s\n",
      prompt.size() / std::max(result.prefill_seconds, 1e-9),
      decoded > 0 ? decoded / std::max(result.decode_seconds, 1e-9) : 0.0);
  return absl::OkStatus();
}

// Runs --batch copies of the request together and reports the decode speed
// of the batch (and, with workers, the cost of their calls).
absl::Status GenerateBatchStats(moe::ModelRunner& runner,
                                const moe::ExpertBackend& backend,
                                const std::vector<int32_t>& prompt) {
  const int n = absl::GetFlag(FLAGS_batch);
  moe::EngineOptions options;
  options.max_batch = n;
  MOE_RETURN_IF_ERROR(moe::ApplyEngineFlags(options));
  moe::BatchEngine engine(runner, options);
  std::vector<moe::GenerationRequest> requests(n, RequestFromFlags(prompt));
  for (int i = 0; i < n; ++i) {
    if (requests[i].sampling.seed) *requests[i].sampling.seed += i;
  }
  MOE_ASSIGN_OR_RETURN(moe::BatchGenerateResult result,
                       moe::GenerateBatch(engine, requests));
  const double seconds = std::max(result.decode_seconds, 1e-9);
  std::cerr << absl::StrFormat(
      "batch %d: decode %.1f tok/s (%.1f per sequence; %d tokens in %.6f s)\n",
      n, result.decode_tokens / seconds, result.decode_tokens / seconds / n,
      result.decode_tokens, seconds);
  if (backend.remote == nullptr) return absl::OkStatus();
  for (const moe::WorkerCallStats& s : backend.remote->Stats()) {
    const double calls = std::max<double>(s.calls, 1);
    std::cerr << absl::StrFormat(
        "worker %s: %d calls, %.1f rows/call, round trip %.0f us (worker "
        "queue %.0f us, compute %.0f us)\n",
        s.id, s.calls, s.rows_sent / calls, s.total_round_trip_us / calls,
        s.total_worker_wait_us / calls, s.total_worker_compute_us / calls);
  }
  return absl::OkStatus();
}

absl::Status Run() {
  const std::string dir = absl::GetFlag(FLAGS_model);
  if (dir.empty()) return absl::InvalidArgumentError("--model is required");
  MOE_ASSIGN_OR_RETURN(const moe::ExpertBackendOptions backend_options,
                       moe::ExpertBackendOptionsFromFlags());
  moe::ThreadPool pool(absl::GetFlag(FLAGS_threads));
  MOE_ASSIGN_OR_RETURN(moe::ExpertBackend backend,
                       moe::OpenExpertBackend(dir, backend_options, pool));
  const moe::ModelWeights* weights = backend.weights.get();
  // Text in or out needs the tokenizer; ids in and ids or logits out do not.
  std::unique_ptr<moe::Tokenizer> tokenizer;
  const bool text_output = absl::GetFlag(FLAGS_logits_out).empty() &&
                           !absl::GetFlag(FLAGS_output_ids);
  if (absl::GetFlag(FLAGS_prompt_ids).empty() || text_output) {
    MOE_ASSIGN_OR_RETURN(tokenizer, moe::LoadTokenizer(dir, weights->config()));
  }
  MOE_ASSIGN_OR_RETURN(const std::vector<int32_t> prompt,
                       PromptIds(tokenizer.get()));
  MOE_ASSIGN_OR_RETURN(
      std::unique_ptr<moe::ModelRunner> runner,
      moe::ModelRunnerFromFlags(*weights, *backend.dispatch, pool));
  if (!absl::GetFlag(FLAGS_logits_out).empty())
    return WriteLogits(*runner, prompt);
  if (absl::GetFlag(FLAGS_batch) < 1) {
    return absl::InvalidArgumentError("--batch must be >= 1");
  }
  if (absl::GetFlag(FLAGS_batch) > 1) {
    return GenerateBatchStats(*runner, backend, prompt);
  }
  return GenerateToStdout(*runner, text_output ? tokenizer.get() : nullptr,
                          prompt);
}

}  // namespace

int main(int argc, char** argv) {
  moe::ParseCommandLine(
      argc, argv,
      "moe-generate --model DIR --prompt TEXT [--max-tokens N "
      "--temperature T --top-k K --top-p P --seed S]");
  const absl::Status status = Run();
  if (!status.ok()) {
    std::cerr << "moe-generate: " << status.message() << "\n";
    return 1;
  }
  return 0;
}

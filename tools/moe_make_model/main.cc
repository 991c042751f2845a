// moe-make-model: writes a random MoE checkpoint in the Hugging Face layout.
#include <iostream>

#include "absl/flags/flag.h"
#include "core/util/command_line.h"
#include "tools/moe_make_model/random_model.h"

ABSL_FLAG(std::string, out, "", "output directory (required)");
ABSL_FLAG(std::string, arch, "mixtral", "mixtral or skywork_moe");
ABSL_FLAG(int, hidden, 64, "hidden size");
ABSL_FLAG(int, layers, 2, "number of layers");
ABSL_FLAG(int, heads, 4, "attention heads");
ABSL_FLAG(int, kv_heads, 2, "key/value heads (GQA when fewer than heads)");
ABSL_FLAG(int, head_dim, 0, "head dimension; 0: hidden / heads");
ABSL_FLAG(int, experts, 8, "experts per layer");
ABSL_FLAG(int, top_k, 2, "experts per token");
ABSL_FLAG(int, intermediate, 128, "intermediate size of one expert");
ABSL_FLAG(int, vocab, 1000,
          "vocabulary size (the trained tokenizer has at most this)");
ABSL_FLAG(int, max_position, 2048, "context length");
ABSL_FLAG(double, rope_theta, 10000.0, "rotary embedding base");
ABSL_FLAG(bool, tie_embeddings, false, "share the embedding with the LM head");
ABSL_FLAG(uint64_t, seed, 1, "random seed");
ABSL_FLAG(std::string, dtype, "bf16", "bf16 or fp8");
ABSL_FLAG(std::string, scales, "tensor", "fp8 scales: tensor or channel");
ABSL_FLAG(int, shards, 1, "number of safetensors files");
ABSL_FLAG(std::string, tokenizer, "",
          "tokenizer.model to copy instead of training one");
ABSL_FLAG(
    std::vector<std::string>, corpus, {},
    "comma-separated text files to train the tokenizer on "
    "(default: /usr/share/common-licenses/*, enough for about 10000 pieces)");

int main(int argc, char** argv) {
  moe::ParseCommandLine(
      argc, argv,
      "moe-make-model --out DIR [--arch mixtral|skywork_moe] "
      "[--hidden N --layers N --heads N --kv-heads N --experts N "
      "--intermediate N --vocab N --seed N --dtype bf16|fp8]");
  moe::RandomModelOptions options;
  moe::ModelConfig& c = options.config;
  const std::string arch = absl::GetFlag(FLAGS_arch);
  const std::string dtype = absl::GetFlag(FLAGS_dtype);
  const std::string scales = absl::GetFlag(FLAGS_scales);
  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty() || (arch != "mixtral" && arch != "skywork_moe") ||
      (dtype != "bf16" && dtype != "fp8") ||
      (scales != "tensor" && scales != "channel")) {
    std::cerr << "moe-make-model: need --out, --arch mixtral|skywork_moe, "
                 "--dtype bf16|fp8, --scales tensor|channel\n";
    return 2;
  }
  c.architecture = arch == "mixtral" ? moe::Architecture::kMixtral
                                     : moe::Architecture::kSkyworkMoe;
  if (c.architecture == moe::Architecture::kSkyworkMoe) {
    moe::UseSkyworkReleaseGating(&c);
  }
  c.hidden_size = absl::GetFlag(FLAGS_hidden);
  c.num_layers = absl::GetFlag(FLAGS_layers);
  c.num_heads = absl::GetFlag(FLAGS_heads);
  c.num_kv_heads = absl::GetFlag(FLAGS_kv_heads);
  c.head_dim = absl::GetFlag(FLAGS_head_dim) > 0
                   ? absl::GetFlag(FLAGS_head_dim)
                   : c.hidden_size / std::max(1, c.num_heads);
  c.num_experts = absl::GetFlag(FLAGS_experts);
  c.top_k = absl::GetFlag(FLAGS_top_k);
  c.intermediate_size = absl::GetFlag(FLAGS_intermediate);
  c.vocab_size = absl::GetFlag(FLAGS_vocab);
  c.max_position_embeddings = absl::GetFlag(FLAGS_max_position);
  c.rope_theta = absl::GetFlag(FLAGS_rope_theta);
  c.rms_norm_eps = 1e-5;
  c.tie_word_embeddings = absl::GetFlag(FLAGS_tie_embeddings);
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  c.weight_format =
      dtype == "fp8" ? moe::WeightFormat::kFp8 : moe::WeightFormat::kFloat;
  options.fp8_scales = scales == "tensor" ? moe::ScaleGranularity::kPerTensor
                                          : moe::ScaleGranularity::kPerChannel;
  options.seed = absl::GetFlag(FLAGS_seed);
  options.num_shards = absl::GetFlag(FLAGS_shards);
  options.tokenizer = absl::GetFlag(FLAGS_tokenizer);
  options.tokenizer_corpus = absl::GetFlag(FLAGS_corpus);
  // Validate the shape the way a loader will, before writing gigabytes.
  const auto parsed =
      moe::ParseModelConfig(moe::ModelConfigToJson(c), "the requested model");
  if (!parsed.ok()) {
    std::cerr << "moe-make-model: " << parsed.status().message() << "\n";
    return 2;
  }
  const absl::Status status = moe::WriteRandomModel(options, out);
  if (!status.ok()) {
    std::cerr << "moe-make-model: " << status.message() << "\n";
    return 1;
  }
  std::cout << out << "\n";
  return 0;
}

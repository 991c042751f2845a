#include "tools/moe_make_model/random_model.h"

#include <cmath>
#include <filesystem>
#include <random>

#include "absl/strings/str_cat.h"
#include "core/model/checkpoint_writer.h"
#include "core/model/fp8_weight_writer.h"
#include "core/tokenizer/tokenizer.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

// Fills tensors with uniform noise of a chosen standard deviation and adds
// them to the checkpoint in its stored format.
class RandomTensors {
 public:
  RandomTensors(const RandomModelOptions& options, CheckpointWriter& writer)
      : options_(options), writer_(writer), generator_(options.seed) {}

  // Values uniform in mean +- std * sqrt(3) (variance std^2).
  std::vector<float> Sample(int64_t count, double mean, double std) {
    std::uniform_real_distribution<float> uniform(
        static_cast<float>(mean - std * std::sqrt(3.0)),
        static_cast<float>(mean + std * std::sqrt(3.0)));
    std::vector<float> values(static_cast<size_t>(count));
    for (float& value : values) value = uniform(generator_);
    return values;
  }

  void AddVector(const std::string& name, int64_t size, double mean,
                 double std) {
    writer_.AddLazy(name, DType::kBF16, {size},
                    [=, this]() -> absl::StatusOr<std::vector<uint8_t>> {
                      return EncodeFloats(Sample(size, mean, std),
                                          DType::kBF16);
                    });
  }

  // A linear weight with standard deviation `std`; FP8 checkpoints store
  // attention and expert weights as FP8 with a `_scale` tensor. Values are
  // drawn when the checkpoint is written, in the order tensors were added.
  void AddMatrix(const std::string& name, int64_t rows, int64_t cols,
                 double std) {
    auto values = [this, rows, cols, std] {
      return Sample(rows * cols, 0.0, std);
    };
    if (options_.config.weight_format == WeightFormat::kFp8 &&
        IsFp8LinearWeight(name)) {
      AddFp8Weight(writer_, name, rows, cols, options_.fp8_scales, values);
    } else {
      writer_.AddLazy(name, DType::kBF16, {rows, cols},
                      [values]() -> absl::StatusOr<std::vector<uint8_t>> {
                        return EncodeFloats(values(), DType::kBF16);
                      });
    }
  }

 private:
  const RandomModelOptions& options_;
  CheckpointWriter& writer_;
  std::mt19937_64 generator_;
};

std::vector<std::string> DefaultCorpus() {
  std::vector<std::string> files;
  for (const fs::directory_entry& entry :
       fs::directory_iterator("/usr/share/common-licenses")) {
    if (entry.is_regular_file()) files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

absl::Status WriteTokenizer(const RandomModelOptions& options,
                            const std::string& directory) {
  const std::string target = directory + "/tokenizer.model";
  if (!options.tokenizer.empty()) {
    std::error_code error;
    fs::copy_file(options.tokenizer, target,
                  fs::copy_options::overwrite_existing, error);
    if (error) {
      return absl::NotFoundError(absl::StrCat(
          "cannot copy tokenizer ", options.tokenizer, ": ", error.message()));
    }
  } else {
    const std::vector<std::string> corpus = options.tokenizer_corpus.empty()
                                                ? DefaultCorpus()
                                                : options.tokenizer_corpus;
    MOE_RETURN_IF_ERROR(TrainSentencePiece(corpus, options.config.vocab_size,
                                           directory + "/tokenizer"));
    fs::remove(directory + "/tokenizer.vocab");
  }
  const nlohmann::json tokenizer_config = {
      {"add_bos_token", true}, {"add_eos_token", false},
      {"bos_token", "<s>"},    {"eos_token", "</s>"},
      {"unk_token", "<unk>"},  {"tokenizer_class", "LlamaTokenizer"}};
  return WriteStringToFile(directory + "/tokenizer_config.json",
                           tokenizer_config.dump(2));
}

}  // namespace

absl::Status WriteRandomModel(const RandomModelOptions& options,
                              const std::string& directory) {
  const ModelConfig& c = options.config;
  std::error_code error;
  fs::create_directories(directory, error);
  if (error) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create ", directory, ": ", error.message()));
  }
  MOE_RETURN_IF_ERROR(WriteTokenizer(options, directory));
  MOE_RETURN_IF_ERROR(WriteStringToFile(directory + "/config.json",
                                        ModelConfigToJson(c).dump(2)));
  // Every id the model can emit must decode: the tokenizer must cover the
  // vocabulary exactly.
  MOE_ASSIGN_OR_RETURN(auto tokenizer, LoadTokenizer(directory, c));
  if (tokenizer->vocab_size() != c.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the tokenizer has ", tokenizer->vocab_size(),
        " pieces but the model's vocab is ", c.vocab_size,
        options.tokenizer.empty()
            ? "; train on more text (--corpus) or ask for a smaller vocab"
            : ""));
  }

  CheckpointWriter writer(options.num_shards);
  RandomTensors random(options, writer);
  const int64_t h = c.hidden_size;
  const int64_t q_dim = static_cast<int64_t>(c.num_heads) * c.head_dim;
  const int64_t kv_dim = static_cast<int64_t>(c.num_kv_heads) * c.head_dim;
  const double in_h = 1.0 / std::sqrt(static_cast<double>(h));
  random.AddMatrix("model.embed_tokens.weight", c.vocab_size, h, 1.0);
  for (int layer = 0; layer < c.num_layers; ++layer) {
    const std::string p = absl::StrCat("model.layers.", layer, ".");
    random.AddVector(p + "input_layernorm.weight", h, 1.0, 0.1);
    random.AddVector(p + "post_attention_layernorm.weight", h, 1.0, 0.1);
    random.AddMatrix(p + "self_attn.q_proj.weight", q_dim, h, in_h);
    random.AddMatrix(p + "self_attn.k_proj.weight", kv_dim, h, in_h);
    random.AddMatrix(p + "self_attn.v_proj.weight", kv_dim, h, in_h);
    random.AddMatrix(p + "self_attn.o_proj.weight", h, q_dim,
                     1.0 / std::sqrt(static_cast<double>(q_dim)));
    // Gate logits of standard deviation ~2: routing varies from token to
    // token without collapsing on a few experts.
    if (c.two_layer_gate) {
      // tanh of products of standard deviation ~1, then the same spread of
      // logits.
      const int64_t middle = 8 * int64_t{c.num_experts};
      random.AddMatrix(p + "block_sparse_moe.gate.wg.0.weight", middle, h,
                       in_h);
      random.AddMatrix(p + "block_sparse_moe.gate.wg.2.weight", c.num_experts,
                       middle, 3.0 / std::sqrt(static_cast<double>(middle)));
    } else {
      random.AddMatrix(p + "block_sparse_moe.gate.weight", c.num_experts, h,
                       2.0 * in_h);
    }
    for (int e = 0; e < c.num_experts; ++e) {
      const std::string x =
          absl::StrCat(p, "block_sparse_moe.experts.", e, ".");
      random.AddMatrix(x + "w1.weight", c.intermediate_size, h, in_h);
      random.AddMatrix(x + "w3.weight", c.intermediate_size, h, in_h);
      random.AddMatrix(
          x + "w2.weight", h, c.intermediate_size,
          1.0 / std::sqrt(static_cast<double>(c.intermediate_size)));
    }
  }
  random.AddVector("model.norm.weight", h, 1.0, 0.1);
  if (!c.tie_word_embeddings) {
    random.AddMatrix("lm_head.weight", c.vocab_size, h, in_h);
  }
  return writer.Write(directory);
}

}  // namespace moe

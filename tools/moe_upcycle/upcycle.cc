#include "tools/moe_upcycle/upcycle.h"

#include <cmath>
#include <filesystem>
#include <random>

#include "absl/strings/str_cat.h"
#include "core/model/checkpoint_writer.h"
#include "core/model/fp8_weight_writer.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"

namespace moe {
namespace {

// Standard deviation of the gate logits over experts for a typical token:
// large enough that tokens pick different experts, small enough that the
// second choice still gets weight.
constexpr double kGateLogitStd = 1.0;

// One generator per tensor, seeded from (seed, layer, expert, tensor), so
// every tensor's values are the same whatever order they are made in.
std::mt19937_64 TensorGenerator(uint64_t seed, int layer, int expert,
                                int tensor) {
  std::seed_seq sequence{
      static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
      static_cast<uint32_t>(layer), static_cast<uint32_t>(expert),
      static_cast<uint32_t>(tensor)};
  return std::mt19937_64(sequence);
}

// Uniform values of mean 0 and variance 1, from the top 24 bits of one
// draw (a std::uniform_real_distribution costs several times more, and
// upcycling draws one value per expert weight).
float UnitUniform(std::mt19937_64& generator) {
  constexpr float kHalfWidth = 1.7320508f;  // sqrt(3)
  const float unit = static_cast<float>(generator() >> 40) * 0x1.0p-24f;
  return (2.0f * unit - 1.0f) * kHalfWidth;
}

class UpcycleWriter {
 public:
  UpcycleWriter(const DenseModel& dense, const UpcycleOptions& options)
      : dense_(dense), options_(options), writer_(options.num_shards) {}

  absl::Status Write(const std::string& directory) {
    const ModelConfig& c = dense_.config();
    Copy("model.embed_tokens.weight");
    for (int layer = 0; layer < c.num_layers; ++layer) {
      const std::string p = absl::StrCat("model.layers.", layer, ".");
      Copy(p + "input_layernorm.weight");
      Copy(p + "post_attention_layernorm.weight");
      for (const char* projection : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
        Copy(absl::StrCat(p, "self_attn.", projection, ".weight"));
      }
      MOE_RETURN_IF_ERROR(AddGate(layer));
      const std::string moe = p + "block_sparse_moe.";
      constexpr std::pair<const char*, const char*> kExpertWeights[] = {
          {"w1", "mlp.gate_proj.weight"},
          {"w3", "mlp.up_proj.weight"},
          {"w2", "mlp.down_proj.weight"}};
      for (int e = 0; e < options_.num_experts; ++e) {
        for (int w = 0; w < 3; ++w) {
          AddExpertWeight(absl::StrCat(moe, "experts.", e, ".",
                                       kExpertWeights[w].first, ".weight"),
                          p + kExpertWeights[w].second, layer, e, w);
        }
      }
    }
    Copy("model.norm.weight");
    if (!c.tie_word_embeddings) Copy("lm_head.weight");
    return writer_.Write(directory);
  }

 private:
  // Adds `name` with `values()` in the output format.
  void Add(const std::string& name, const std::vector<int64_t>& shape,
           std::function<absl::StatusOr<std::vector<float>>()> values) {
    if (options_.format == WeightFormat::kFp8 && IsFp8LinearWeight(name) &&
        shape.size() == 2) {
      AddFp8Weight(writer_, name, shape[0], shape[1], options_.fp8_scales,
                   std::move(values));
      return;
    }
    const DType dtype = options_.format == WeightFormat::kFp8
                            ? DType::kBF16
                            : options_.float_dtype;
    writer_.AddLazy(name, dtype, shape,
                    [values, dtype]() -> absl::StatusOr<std::vector<uint8_t>> {
                      MOE_ASSIGN_OR_RETURN(std::vector<float> v, values());
                      return EncodeFloats(v, dtype);
                    });
  }

  void Copy(const std::string& name) {
    Add(name, dense_.shapes().at(name),
        [this, name] { return dense_.Read(name); });
  }

  void AddExpertWeight(const std::string& name, const std::string& dense_name,
                       int layer, int expert, int tensor) {
    Add(name, dense_.shapes().at(dense_name),
        [=, this]() -> absl::StatusOr<std::vector<float>> {
          MOE_ASSIGN_OR_RETURN(std::vector<float> values,
                               dense_.Read(dense_name));
          if (options_.noise == 0) return values;
          std::mt19937_64 generator =
              TensorGenerator(options_.seed, layer, expert, tensor);
          const float noise = static_cast<float>(options_.noise);
          for (float& value : values) {
            value *= 1.0f + noise * UnitUniform(generator);
          }
          return values;
        });
  }

  // A random gate whose logits have about kGateLogitStd over experts: the
  // gate's input is RMS-normalized and then scaled by the norm weight g, so
  // its length is about sqrt(hidden) · rms(g).
  absl::Status AddGate(int layer) {
    const ModelConfig& c = dense_.config();
    const std::string norm = absl::StrCat("model.layers.", layer,
                                          ".post_attention_layernorm.weight");
    MOE_ASSIGN_OR_RETURN(std::vector<float> g, dense_.Read(norm));
    double sum_squares = 0;
    for (float v : g) sum_squares += double{v} * v;
    const double rms = std::sqrt(sum_squares / g.size());
    const double scale =
        kGateLogitStd /
        (std::sqrt(static_cast<double>(c.hidden_size)) * std::max(rms, 1e-6));
    const int64_t experts = options_.num_experts;
    const int64_t hidden = c.hidden_size;
    const uint64_t seed = options_.seed;
    Add(absl::StrCat("model.layers.", layer, ".block_sparse_moe.gate.weight"),
        {experts, hidden}, [=]() -> absl::StatusOr<std::vector<float>> {
          std::mt19937_64 generator =
              TensorGenerator(seed, layer, /*expert=*/-1, /*tensor=*/-1);
          std::vector<float> values(experts * hidden);
          for (float& value : values) value = scale * UnitUniform(generator);
          return values;
        });
    return absl::OkStatus();
  }

 private:
  const DenseModel& dense_;
  const UpcycleOptions& options_;
  CheckpointWriter writer_;
};

ModelConfig MoeConfig(const DenseModel& dense, const UpcycleOptions& options) {
  ModelConfig config = dense.config();
  config.architecture = options.architecture;
  config.num_experts = options.num_experts;
  config.top_k = std::min(2, options.num_experts);
  if (options.architecture == Architecture::kSkyworkMoe) {
    UseSkyworkReleaseGating(&config);
  }
  config.weight_format = options.format;
  return config;
}

}  // namespace

absl::Status Upcycle(const DenseModel& dense, const UpcycleOptions& options,
                     const std::string& directory) {
  if (options.num_experts < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--experts must be at least 1, got ", options.num_experts));
  }
  // Noise above 1/sqrt(3) could flip a weight's sign.
  if (!(options.noise >= 0 && options.noise <= 0.5)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--noise must be in [0, 0.5], got ", options.noise));
  }
  std::error_code error;
  std::filesystem::create_directories(directory, error);
  if (error) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create ", directory, ": ", error.message()));
  }
  // A tokenizer of an earlier model in `directory` would shadow this one.
  for (const char* file :
       {"tokenizer.model", "tokenizer.json", "tokenizer_config.json"}) {
    std::filesystem::remove(std::filesystem::path(directory) / file, error);
  }
  MOE_RETURN_IF_ERROR(dense.WriteTokenizer(directory));
  UpcycleWriter writer(dense, options);
  MOE_RETURN_IF_ERROR(writer.Write(directory));
  nlohmann::json config = ModelConfigToJson(MoeConfig(dense, options));
  if (options.format == WeightFormat::kFloat) {
    config["torch_dtype"] =
        options.float_dtype == DType::kF32 ? "float32" : "bfloat16";
  }
  return WriteStringToFile(directory + "/config.json", config.dump(2));
}

}  // namespace moe

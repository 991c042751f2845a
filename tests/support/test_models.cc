#include "tests/support/test_models.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "tools/moe_make_model/random_model.h"

namespace moe::testing {

ModelConfig TestModelSpec::Config() const {
  ModelConfig c;
  c.architecture = architecture;
  c.use_logits_norm = architecture == Architecture::kSkyworkMoe;
  c.two_layer_gate = two_layer_gate;
  c.mixtral_gating = mixtral_gating;
  c.no_mul_topk = no_mul_topk;
  c.hidden_size = hidden;
  c.num_layers = layers;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = hidden / heads;
  c.num_experts = experts;
  c.top_k = 2;
  c.intermediate_size = intermediate;
  c.vocab_size = vocab;
  c.max_position_embeddings = 512;
  c.rope_theta = 10000.0;
  c.rms_norm_eps = 1e-5;
  c.tie_word_embeddings = tie_embeddings;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  c.weight_format = format;
  return c;
}

std::string TestModelSpec::Name() const {
  return absl::StrCat(
      ArchitectureName(architecture), "_",
      format == WeightFormat::kFp8 ? "fp8" : "bf16",
      scales == ScaleGranularity::kPerChannel ? "c" : "t", "_h", hidden, "_l",
      layers, "_a", heads, "_kv", kv_heads, "_e", experts, "_i", intermediate,
      "_v", vocab, "_s", shards, tie_embeddings ? "_tied" : "",
      two_layer_gate ? "_gate2" : "", mixtral_gating ? "_mixtralgating" : "",
      no_mul_topk ? "_nomultopk" : "", "_seed", seed);
}

namespace {

// The models of this process, removed when it exits.
class ModelCache {
 public:
  ~ModelCache() {
    std::error_code ignored;
    std::filesystem::remove_all(root_, ignored);
  }
  const std::string& root() const { return root_; }
  std::map<std::string, std::string>& made() { return made_; }

 private:
  std::string root_ =
      absl::StrCat(::testing::TempDir(), "/moe_test_models_", getpid());
  std::map<std::string, std::string> made_;
};

}  // namespace

std::string MakeTestModel(const TestModelSpec& spec) {
  static ModelCache cache;
  std::map<std::string, std::string>* made = &cache.made();
  const std::string name = spec.Name();
  if (auto it = made->find(name); it != made->end()) return it->second;
  const std::string directory = absl::StrCat(cache.root(), "/", name);
  RandomModelOptions options;
  options.config = spec.Config();
  options.seed = spec.seed;
  options.fp8_scales = spec.scales;
  options.num_shards = spec.shards;
  const absl::Status status = WriteRandomModel(options, directory);
  EXPECT_TRUE(status.ok()) << status;
  (*made)[name] = directory;
  return directory;
}

namespace {

// config.json and model.safetensors of `source` copied to `source + suffix`.
std::string CopyModelFiles(const std::string& source,
                           const std::string& suffix) {
  const std::string dir = source + suffix;
  std::filesystem::create_directories(dir);
  for (const char* file : {"config.json", "model.safetensors"}) {
    std::filesystem::copy_file(
        source + "/" + file, dir + "/" + file,
        std::filesystem::copy_options::overwrite_existing);
  }
  return dir;
}

}  // namespace

std::string CopyWithConfigEdit(
    const std::string& source, const std::string& suffix,
    const std::function<void(nlohmann::json&)>& edit) {
  const std::string dir = CopyModelFiles(source, suffix);
  nlohmann::json config;
  {
    std::ifstream in(dir + "/config.json");
    config = nlohmann::json::parse(in);
  }
  edit(config);
  std::ofstream out(dir + "/config.json", std::ios::trunc);
  out << config.dump(2);
  EXPECT_TRUE(out.good()) << "writing " << dir << "/config.json";
  return dir;
}

std::string CopyWithTensorBytes(const std::string& source,
                                const std::string& tensor, char value,
                                const std::string& suffix,
                                std::optional<int64_t> row) {
  const std::string dir = CopyModelFiles(source, suffix);
  std::fstream file(dir + "/model.safetensors",
                    std::ios::in | std::ios::out | std::ios::binary);
  uint64_t header_size = 0;
  file.read(reinterpret_cast<char*>(&header_size), 8);
  std::string header(header_size, '\0');
  file.read(header.data(), static_cast<std::streamsize>(header_size));
  const nlohmann::json entry = nlohmann::json::parse(header)[tensor];
  uint64_t begin = entry["data_offsets"][0].get<uint64_t>();
  uint64_t end = entry["data_offsets"][1].get<uint64_t>();
  if (row.has_value()) {
    const uint64_t row_bytes =
        (end - begin) / entry["shape"][0].get<uint64_t>();
    begin += static_cast<uint64_t>(*row) * row_bytes;
    end = begin + row_bytes;
  }
  file.seekp(static_cast<std::streamoff>(8 + header_size + begin));
  const std::string bytes(end - begin, value);
  file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  EXPECT_TRUE(file.good()) << "writing " << dir << "/model.safetensors";
  return dir;
}

std::vector<int32_t> RandomTokens(int count, int vocab, uint64_t seed) {
  std::mt19937_64 generator(seed);
  std::uniform_int_distribution<int32_t> id(3, vocab - 1);
  std::vector<int32_t> tokens(count);
  for (int32_t& token : tokens) token = id(generator);
  return tokens;
}

}  // namespace moe::testing

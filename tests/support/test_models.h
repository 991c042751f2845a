#ifndef MOE_TESTS_SUPPORT_TEST_MODELS_H_
#define MOE_TESTS_SUPPORT_TEST_MODELS_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/model/model_config.h"
#include "core/model/quantize.h"
#include "nlohmann/json.hpp"

namespace moe::testing {

// A small random checkpoint for tests.
struct TestModelSpec {
  Architecture architecture = Architecture::kMixtral;
  WeightFormat format = WeightFormat::kFloat;
  ScaleGranularity scales = ScaleGranularity::kPerTensor;
  int hidden = 64;
  int layers = 2;
  int heads = 4;
  int kv_heads = 2;
  int experts = 8;
  int intermediate = 96;
  int vocab = 400;
  int shards = 1;
  bool tie_embeddings = false;
  // Skywork-MoE's flags (ModelConfig); the defaults scale the experts' input
  // by top_k, as the modeling code does when config.json leaves them out.
  bool two_layer_gate = false;
  bool mixtral_gating = false;
  bool no_mul_topk = false;
  uint64_t seed = 7;

  ModelConfig Config() const;
  std::string Name() const;  // unique per spec
};

// Writes the model (once per process and spec) under the test temp dir and
// returns its directory. Fails the current test on error.
std::string MakeTestModel(const TestModelSpec& spec);

// A copy of a test model's config.json and model.safetensors under
// `source + suffix`, with every byte of `tensor`, or of its row `row` (along
// its first dimension) when given, set to `value`.
std::string CopyWithTensorBytes(const std::string& source,
                                const std::string& tensor, char value,
                                const std::string& suffix,
                                std::optional<int64_t> row = std::nullopt);

// A copy of a test model's config.json, edited by `edit`, and its
// model.safetensors under `source + suffix`.
std::string CopyWithConfigEdit(
    const std::string& source, const std::string& suffix,
    const std::function<void(nlohmann::json&)>& edit);

// `count` token ids drawn uniformly from [3, vocab): no BOS or EOS.
std::vector<int32_t> RandomTokens(int count, int vocab, uint64_t seed);

}  // namespace moe::testing

#endif  // MOE_TESTS_SUPPORT_TEST_MODELS_H_

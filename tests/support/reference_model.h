#ifndef MOE_TESTS_SUPPORT_REFERENCE_MODEL_H_
#define MOE_TESTS_SUPPORT_REFERENCE_MODEL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/model/dtype.h"
#include "core/model/model_config.h"

namespace moe::testing {

// One stored value (F32, F16, BF16 or FP8 E4M3 bytes at `p`) decoded from the
// formats' definitions, independently of core/.
double DecodeStoredValue(DType dtype, const uint8_t* p);

// A float64 implementation of the MoE transformer written from the math
// (Mixtral / Skywork-MoE as in Hugging Face transformers), independent of
// the engine: it decodes the stored BF16/F16/F32/FP8 bytes itself and
// recomputes the whole sequence without a cache.
class ReferenceModel {
 public:
  // Fails the current test (and returns null) on error.
  static std::unique_ptr<ReferenceModel> Load(const std::string& directory);

  struct Output {
    std::vector<std::vector<double>> logits;  // [tokens][vocab], teacher-forced
    // Per position: the smallest gap, over layers, between the k-th and the
    // (k+1)-th routing probability. Below the comparison tolerance, float32
    // rounding may legitimately pick a different expert.
    std::vector<double> routing_margin;
  };
  Output Run(const std::vector<int32_t>& tokens) const;

  const ModelConfig& config() const { return config_; }

 private:
  using Matrix = std::vector<std::vector<double>>;  // [rows][cols]
  struct Expert {
    Matrix w1, w3, w2;
  };
  struct Layer {
    std::vector<double> input_norm, post_norm;
    Matrix q, k, v, o, gate;
    Matrix gate_hidden;  // moe_2layer_gate's first product, else empty
    std::vector<Expert> experts;
  };
  // Skywork-MoE's MoE flags, read from config.json with its modeling code's
  // defaults for absent keys (all false for Mixtral).
  struct SkyworkFlags {
    bool two_layer_gate = false;
    bool mixtral_gating = false;
    bool no_mul_topk = false;
  };

  // The top_k experts of one position and their weights, from its gate
  // logits; updates `margin`.
  std::vector<std::pair<int, double>> Route(std::vector<double> z,
                                            double& margin) const;

  ModelConfig config_;
  SkyworkFlags flags_;
  Matrix embed_, lm_head_;
  std::vector<double> final_norm_;
  std::vector<Layer> layers_;
};

}  // namespace moe::testing

#endif  // MOE_TESTS_SUPPORT_REFERENCE_MODEL_H_

#ifndef MOE_TESTS_SUPPORT_DENSE_LLAMA_REFERENCE_H_
#define MOE_TESTS_SUPPORT_DENSE_LLAMA_REFERENCE_H_

#include <cstdint>
#include <vector>

#include "core/model/gguf.h"

namespace moe::testing {

// Teacher-forced logits [tokens][vocab] of a dense llama GGUF model in
// float64, written from the llama.cpp graph: it reads the GGUF's own
// metadata and tensor names and applies rotary embeddings to interleaved
// pairs (dims 2j, 2j+1), the order GGUF files store Q and K in. It shares
// nothing with the HF mapping under test except the file reader and its
// dequantization (tested on its own against the block definitions).
std::vector<std::vector<double>> DenseLlamaLogits(
    const GgufFile& gguf, const std::vector<int32_t>& tokens);

}  // namespace moe::testing

#endif  // MOE_TESTS_SUPPORT_DENSE_LLAMA_REFERENCE_H_

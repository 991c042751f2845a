#ifndef MOE_TOOLS_MOE_UPCYCLE_GGUF_LLAMA_H_
#define MOE_TOOLS_MOE_UPCYCLE_GGUF_LLAMA_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/model/gguf.h"
#include "tools/moe_upcycle/dense_model.h"

namespace moe {

// Opens a llama-architecture GGUF file as a dense model in the Hugging Face
// layout: `llama.*` metadata becomes the config, GGUF tensor names the HF
// ones (token_embd → model.embed_tokens, blk.N.attn_q → ...q_proj, ...), and
// the Q and K rows, which GGUF converters permute for llama.cpp's
// interleaved rotary embedding, are put back in the HF (rotate-half) order.
// Other architectures, mixture-of-experts GGUFs, RoPE scaling and tensor
// types other than F32, F16, BF16, Q8_0, Q4_0 and Q4_1 are rejected with a
// message naming them.
absl::StatusOr<std::unique_ptr<DenseModel>> OpenGgufLlama(
    const std::string& path);

// The GGUF name of an HF tensor name of a dense llama model ("" if none).
std::string GgufTensorName(const std::string& hf_name);

}  // namespace moe

#endif  // MOE_TOOLS_MOE_UPCYCLE_GGUF_LLAMA_H_

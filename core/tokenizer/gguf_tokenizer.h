#ifndef MOE_CORE_TOKENIZER_GGUF_TOKENIZER_H_
#define MOE_CORE_TOKENIZER_GGUF_TOKENIZER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace moe {

// What a checkpoint's config.json needs from the tokenizer of a GGUF file.
struct GgufTokenizerInfo {
  int vocab_size = 0;
  int bos_id = -1;  // -1: the file names none
  // EOS, then the end-of-turn and end-of-message tokens when the file names
  // them: llama.cpp stops generating at any of them. May be empty.
  std::vector<int> eos_ids;
  bool add_bos = false;
};

// Writes the tokenizer described by GGUF metadata (the `tokenizer.ggml.*`
// keys, as GgufFile::metadata() holds them) into `directory`, created if
// missing, in the Hugging Face form it was converted from: tokenizer.json for
// model "gpt2" (byte-level BPE), tokenizer.model for model "llama"
// (SentencePiece), and tokenizer_config.json for both. Nothing is written
// unless the whole vocabulary is valid; errors name `source` (the GGUF file)
// and the offending key or token id.
absl::StatusOr<GgufTokenizerInfo> WriteGgufTokenizer(
    const nlohmann::json& metadata, const std::string& source,
    const std::string& directory);

}  // namespace moe

#endif  // MOE_CORE_TOKENIZER_GGUF_TOKENIZER_H_

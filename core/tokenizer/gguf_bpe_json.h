#ifndef MOE_CORE_TOKENIZER_GGUF_BPE_JSON_H_
#define MOE_CORE_TOKENIZER_GGUF_BPE_JSON_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/tokenizer/gguf_vocabulary.h"
#include "nlohmann/json.hpp"

// A GGUF "gpt2" tokenizer (byte-level BPE) as the tokenizers library's
// tokenizer.json.
namespace moe::gguf {

// What a tokenizer.ggml.pre name stands for. llama.cpp's converter names the
// pre-tokenizer of the model's tokenizer.json by hashing its output, and
// llama.cpp re-implements each as regexes (llama-vocab.cpp); these are the
// tokenizer.json components those names came from.
struct PreTokenizer {
  std::vector<std::string> names;
  nlohmann::json normalizer;  // null: none
  nlohmann::json pre_tokenizer;
  bool ignore_merges;
  bool add_bos;  // llama.cpp's default when the file has no add_bos_token
};

// The pre-tokenizer named `name` (tokenizer.ggml.pre); an error listing the
// supported names otherwise.
absl::StatusOr<const PreTokenizer*> FindPreTokenizer(const Metadata& metadata,
                                                     const std::string& name);

// tokenizer.json for the vocabulary, the merges (tokenizer.ggml.merges, each
// checked) and the pre-tokenizer.
absl::StatusOr<nlohmann::json> BpeTokenizerJson(const Metadata& metadata,
                                                const Vocabulary& vocab,
                                                const PreTokenizer& pre);

}  // namespace moe::gguf

#endif  // MOE_CORE_TOKENIZER_GGUF_BPE_JSON_H_

#ifndef MOE_CORE_TOKENIZER_GGUF_SENTENCEPIECE_MODEL_H_
#define MOE_CORE_TOKENIZER_GGUF_SENTENCEPIECE_MODEL_H_

#include <string>

#include "absl/status/statusor.h"
#include "core/tokenizer/gguf_vocabulary.h"

namespace moe::gguf {

// A GGUF "llama" tokenizer as SentencePiece's tokenizer.model (a serialized
// ModelProto): its pieces with their scores (tokenizer.ggml.scores) and
// types, BPE, byte fallback when it has byte pieces. Errors name the token
// SentencePiece would refuse.
absl::StatusOr<std::string> SentencePieceModel(const Metadata& metadata,
                                               const Vocabulary& vocab);

}  // namespace moe::gguf

#endif  // MOE_CORE_TOKENIZER_GGUF_SENTENCEPIECE_MODEL_H_

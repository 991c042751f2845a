#ifndef MOE_CORE_TOKENIZER_SENTENCEPIECE_TOKENIZER_H_
#define MOE_CORE_TOKENIZER_SENTENCEPIECE_TOKENIZER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/tokenizer/tokenizer.h"

namespace moe {

// Loads a SentencePiece `tokenizer.model` through the module of
// sentencepiece_shim.h. `bos_id`: the id EncodePrompt puts first, -1 for
// none. Errors name `path`.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadSentencePieceTokenizer(
    const std::string& path, int bos_id);

}  // namespace moe

#endif  // MOE_CORE_TOKENIZER_SENTENCEPIECE_TOKENIZER_H_

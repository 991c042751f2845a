#ifndef MOE_CORE_TOKENIZER_TOKENIZER_H_
#define MOE_CORE_TOKENIZER_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/model_config.h"

namespace moe {

// Text to token ids and back, for one checkpoint. Thread-safe.
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Token ids of `text`, without special tokens.
  virtual absl::StatusOr<std::vector<int32_t>> Encode(
      std::string_view text) const = 0;
  // Text of `ids`; ids outside the vocabulary are an error naming the id.
  virtual absl::StatusOr<std::string> Decode(
      std::span<const int32_t> ids) const = 0;
  virtual int vocab_size() const = 0;

  // The ids a prompt becomes: BOS first when the model expects it.
  absl::StatusOr<std::vector<int32_t>> EncodePrompt(
      std::string_view text) const;

 protected:
  int bos_id_ = -1;  // -1: no BOS is added
};

// Loads the tokenizer of a checkpoint directory: SentencePiece from
// `tokenizer.model` when there is one, else byte-level BPE from
// `tokenizer.json` (see bpe_tokenizer.h); NotFound when neither exists. The
// tokenizer's vocabulary must fit `config.vocab_size`. BOS is
// `config.bos_token_id` when `tokenizer_config.json` says "add_bos_token":
// true, none when it says false; without that key, SentencePiece adds
// `config.bos_token_id` and BPE the token its post-processor's template
// starts with, if any.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(
    const std::string& directory, const ModelConfig& config);

// Trains a SentencePiece BPE model with byte fallback on text files and writes
// `<model_prefix>.model`. `vocab_size` is an upper bound: small corpora give
// fewer pieces; it must leave room for the 256 byte pieces, the 3 special
// ones and every distinct character of the corpus. Ids 0, 1, 2 are <unk>,
// <s>, </s>.
absl::Status TrainSentencePiece(const std::vector<std::string>& input_files,
                                int vocab_size,
                                const std::string& model_prefix);

}  // namespace moe

#endif  // MOE_CORE_TOKENIZER_TOKENIZER_H_

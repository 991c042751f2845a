#ifndef MOE_CORE_TOKENIZER_BPE_TOKENIZER_H_
#define MOE_CORE_TOKENIZER_BPE_TOKENIZER_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "core/tokenizer/tokenizer.h"

namespace moe {

// Loads the byte-level BPE tokenizer of a Hugging Face `tokenizer.json`
// (GPT-2, Llama 3, SmolLM2 and the like). It encodes and decodes as
// the `tokenizers` library does:
//
//  - Encode(text) is `encode(text, add_special_tokens=False).ids`. Ill-formed
//    UTF-8 in `text` is first replaced with U+FFFD as Python's
//    `bytes.decode("utf-8", errors="replace")` does, so Encode(bytes) equals
//    the encoding of that decoded string.
//  - Decode(ids) is `decode(ids, skip_special_tokens=True)`: special added
//    tokens decode to nothing, other added tokens to their content, and bytes
//    that do not form UTF-8 to U+FFFD.
//  - vocab_size() is the largest id of the vocab and the added tokens, plus
//    one.
//
// Supported: model BPE (merges as "a b" or [a, b], ignore_merges, unk_token,
// fuse_unk); pre_tokenizer ByteLevel, Split (any behavior, invert), Digits
// and Sequence; no normalizer; decoder ByteLevel; added tokens, special or
// not, with ids past the vocab; post_processor ByteLevel, TemplateProcessing
// and Sequence. Anything else (a normalizer, BPE dropout, byte_fallback,
// continuing_subword_prefix, end_of_word_suffix, added tokens with lstrip,
// rstrip or single_word or with ids other than those tokenizers gives them,
// other pre-tokenizer, decoder or post-processor types) is an
// InvalidArgument error naming the field.
//
// Regexes run on PCRE2 where tokenizers uses Oniguruma. Their Unicode tables
// may differ on the newest characters, and PCRE2 10.42 counts U+180E
// (Mongolian vowel separator) as \s where Oniguruma does not.
//
// `bos_id`: the id EncodePrompt puts first, -1 for none; nullopt: the special
// token the post_processor's TemplateProcessing puts before a single
// sequence, if any. Errors are prefixed with `path`.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadBpeTokenizer(
    const std::string& path, std::optional<int> bos_id);

}  // namespace moe

#endif  // MOE_CORE_TOKENIZER_BPE_TOKENIZER_H_

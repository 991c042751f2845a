#ifndef MOE_CORE_TOKENIZER_BPE_MODEL_H_
#define MOE_CORE_TOKENIZER_BPE_MODEL_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/tokenizer/tokenizer_json.h"

namespace moe {

// The "model" of a `tokenizer.json` of type BPE: a vocabulary and ranked
// merges, applied to one pre-tokenized word at a time exactly as Hugging Face
// tokenizers does (lowest rank first, leftmost first among equal ranks).
// Options that make encoding random or that byte-level vocabularies do not
// use (dropout, byte_fallback, continuing_subword_prefix,
// end_of_word_suffix) are rejected.
class BpeModel {
 public:
  // The largest token id accepted; keeps the id tables of a malformed file
  // from growing without bound.
  static constexpr int64_t kMaxTokenId = (int64_t{1} << 24) - 1;

  // `json`: the "model" member. Errors name the offending field.
  static absl::StatusOr<BpeModel> FromJson(const TokenizerJson& json);

  // Appends the ids of `word` (valid UTF-8). Characters outside the
  // vocabulary become the unk_token, or are dropped when there is none.
  void Encode(std::string_view word, std::vector<int32_t>* ids) const;

  const absl::flat_hash_map<std::string, int32_t>& vocab() const {
    return vocab_;
  }

 private:
  struct Merge {
    int32_t rank;
    int32_t merged_id;
  };

  BpeModel() = default;

  // The id of `token`, or null. (Abseil's own string_view, which this
  // Abseil build does not alias to std::string_view, is what its maps look
  // up without a copy.)
  const int32_t* FindId(std::string_view token) const {
    const auto it = vocab_.find(absl::string_view(token.data(), token.size()));
    return it == vocab_.end() ? nullptr : &it->second;
  }

  static uint64_t PairKey(int32_t left, int32_t right) {
    return (uint64_t{static_cast<uint32_t>(left)} << 32) |
           static_cast<uint32_t>(right);
  }

  absl::flat_hash_map<std::string, int32_t> vocab_;
  absl::flat_hash_map<uint64_t, Merge> merges_;  // by PairKey
  bool ignore_merges_ = false;  // a word in the vocabulary is one token
  int32_t unk_id_ = -1;         // -1: unknown characters are dropped
  bool fuse_unk_ = false;       // consecutive unknown characters: one unk
};

}  // namespace moe

#endif  // MOE_CORE_TOKENIZER_BPE_MODEL_H_

#include "core/tokenizer/bpe_model.h"

#include <algorithm>
#include <queue>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/tokenizer/utf8.h"
#include "core/util/status_macros.h"

namespace moe {
namespace {

absl::Status RejectUnsupported(const TokenizerJson& json) {
  if (const auto dropout = json.Find("dropout")) {
    // tokenizers treats a dropout of 0 as none.
    if (!dropout->value().is_number() || dropout->value().get<double>() != 0) {
      return dropout->Error(absl::StrCat(
          "BPE dropout ", dropout->value().dump(),
          " is not supported: it makes encoding random; expected null"));
    }
  }
  MOE_ASSIGN_OR_RETURN(const bool byte_fallback,
                       json.Bool("byte_fallback", false));
  if (byte_fallback) {
    return json.Error(
        "byte_fallback: true is not supported (a SentencePiece-style "
        "vocabulary with <0xXX> pieces; load its tokenizer.model instead)");
  }
  for (const char* affix :
       {"continuing_subword_prefix", "end_of_word_suffix"}) {
    MOE_ASSIGN_OR_RETURN(const std::optional<std::string> value,
                         json.OptionalString(affix));
    if (value.has_value() && !value->empty()) {
      return json.Error(absl::StrCat(affix, " \"", *value,
                                     "\" is not supported; expected null"));
    }
  }
  return absl::OkStatus();
}

absl::Status ReadVocab(const TokenizerJson& json,
                       absl::flat_hash_map<std::string, int32_t>* vocab) {
  MOE_RETURN_IF_ERROR(json.ExpectObject());
  vocab->reserve(json.value().size());
  int32_t max_id = -1;
  for (const auto& [token, id] : json.value().items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
        id.get<int64_t>() > BpeModel::kMaxTokenId) {
      return json.Error(absl::StrCat("\"", token, "\" has id ", id.dump(),
                                     "; expected an integer in [0, ",
                                     BpeModel::kMaxTokenId, "]"));
    }
    vocab->emplace(token, id.get<int32_t>());
    max_id = std::max(max_id, id.get<int32_t>());
  }
  std::vector<const std::string*> token_of(max_id + 1, nullptr);
  for (const auto& [token, id] : *vocab) {
    if (token_of[id] != nullptr) {
      return json.Error(absl::StrCat("\"", *token_of[id], "\" and \"", token,
                                     "\" have the same id ", id));
    }
    token_of[id] = &token;
  }
  return absl::OkStatus();
}

// A merge is "left right" or, in newer files, ["left", "right"].
absl::StatusOr<std::pair<std::string, std::string>> ReadMerge(
    const TokenizerJson& json) {
  const nlohmann::json& value = json.value();
  if (value.is_string()) {
    const std::vector<std::string> parts =
        absl::StrSplit(value.get<std::string>(), ' ');
    if (parts.size() == 2) return std::make_pair(parts[0], parts[1]);
  } else if (value.is_array() && value.size() == 2 && value[0].is_string() &&
             value[1].is_string()) {
    return std::make_pair(value[0].get<std::string>(),
                          value[1].get<std::string>());
  }
  return json.Error(absl::StrCat(
      "expected \"left right\" or [left, right], got ", value.dump()));
}

}  // namespace

absl::StatusOr<BpeModel> BpeModel::FromJson(const TokenizerJson& json) {
  MOE_ASSIGN_OR_RETURN(const std::string type, json.Type());
  if (type != "BPE") {
    return json.Error(
        absl::StrCat("unsupported model type \"", type, "\"; expected BPE"));
  }
  MOE_RETURN_IF_ERROR(RejectUnsupported(json));
  BpeModel model;
  MOE_ASSIGN_OR_RETURN(model.ignore_merges_, json.Bool("ignore_merges", false));
  MOE_ASSIGN_OR_RETURN(model.fuse_unk_, json.Bool("fuse_unk", false));
  MOE_ASSIGN_OR_RETURN(const TokenizerJson vocab, json.Get("vocab"));
  MOE_RETURN_IF_ERROR(ReadVocab(vocab, &model.vocab_));

  MOE_ASSIGN_OR_RETURN(const std::optional<std::string> unk,
                       json.OptionalString("unk_token"));
  if (unk.has_value()) {
    const auto it = model.vocab_.find(*unk);
    if (it == model.vocab_.end()) {
      return json.Error(
          absl::StrCat("unk_token \"", *unk, "\" is not in the vocab"));
    }
    model.unk_id_ = it->second;
  }

  MOE_ASSIGN_OR_RETURN(const TokenizerJson merges, json.Get("merges"));
  MOE_RETURN_IF_ERROR(merges.ExpectArray());
  model.merges_.reserve(merges.value().size());
  for (size_t rank = 0; rank < merges.value().size(); ++rank) {
    const TokenizerJson merge = merges.Element(rank);
    MOE_ASSIGN_OR_RETURN(const auto pair, ReadMerge(merge));
    auto id_of = [&](const std::string& token) -> absl::StatusOr<int32_t> {
      const auto it = model.vocab_.find(token);
      if (it == model.vocab_.end()) {
        return merge.Error(
            absl::StrCat("token \"", token, "\" is not in the vocab"));
      }
      return it->second;
    };
    MOE_ASSIGN_OR_RETURN(const int32_t left, id_of(pair.first));
    MOE_ASSIGN_OR_RETURN(const int32_t right, id_of(pair.second));
    MOE_ASSIGN_OR_RETURN(const int32_t merged, id_of(pair.first + pair.second));
    // A repeated pair takes its last rank, as in tokenizers.
    model.merges_[PairKey(left, right)] =
        Merge{static_cast<int32_t>(rank), merged};
  }
  return model;
}

void BpeModel::Encode(std::string_view word, std::vector<int32_t>* ids) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (const int32_t* id = FindId(word)) {
      ids->push_back(*id);
      return;
    }
  }

  // The word's symbols as a linked list over a vector (tokenizers' Word).
  struct Symbol {
    int32_t id;
    int prev;  // -1: none
    int next;  // -1: none
    bool merged_away = false;
  };
  std::vector<Symbol> symbols;
  auto add = [&symbols](int32_t id) {
    const int index = static_cast<int>(symbols.size());
    if (!symbols.empty()) symbols.back().next = index;
    symbols.push_back({id, index - 1, -1});
  };
  bool pending_unk = false;
  for (size_t i = 0; i < word.size();) {
    const size_t length = Utf8CharLength(word[i]);
    const int32_t* id = FindId(word.substr(i, length));
    i += length;
    if (id != nullptr) {
      if (pending_unk) add(unk_id_);
      pending_unk = false;
      add(*id);
    } else if (unk_id_ >= 0) {
      if (pending_unk && !fuse_unk_) add(unk_id_);
      pending_unk = true;
    }
  }
  if (pending_unk) add(unk_id_);

  struct Candidate {
    int32_t rank;
    int pos;  // of the left symbol
    int32_t merged_id;
    // std::priority_queue pops the largest: the lowest rank, then the
    // leftmost position, must compare largest.
    bool operator<(const Candidate& other) const {
      return rank != other.rank ? rank > other.rank : pos > other.pos;
    }
  };
  std::priority_queue<Candidate> queue;
  auto consider = [&](int left) {
    const auto it =
        merges_.find(PairKey(symbols[left].id, symbols[symbols[left].next].id));
    if (it != merges_.end()) {
      queue.push({it->second.rank, left, it->second.merged_id});
    }
  };
  for (int pos = 0; pos + 1 < static_cast<int>(symbols.size()); ++pos) {
    consider(pos);
  }
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (left.merged_away || left.next < 0) continue;
    // A stale candidate: the pair at `pos` changed since it was queued.
    // tokenizers compares only the merged id, and so does this.
    const auto it = merges_.find(PairKey(left.id, symbols[left.next].id));
    if (it == merges_.end() || it->second.merged_id != top.merged_id) continue;
    Symbol& right = symbols[left.next];
    right.merged_away = true;
    left.id = top.merged_id;
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = top.pos;
    if (left.prev >= 0) consider(left.prev);
    if (left.next >= 0) consider(top.pos);
  }
  for (const Symbol& symbol : symbols) {
    if (!symbol.merged_away) ids->push_back(symbol.id);
  }
}

}  // namespace moe

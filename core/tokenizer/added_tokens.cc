#include "core/tokenizer/added_tokens.h"

#include <algorithm>

namespace moe {

AddedTokens::AddedTokens(std::vector<Token> tokens)
    : tokens_(std::move(tokens)) {
  for (int i = 0; i < static_cast<int>(tokens_.size()); ++i) {
    const std::string& content = tokens_[i].content;
    if (content.empty()) continue;
    Index& index = tokens_[i].normalized ? normalized_ : unnormalized_;
    index[static_cast<unsigned char>(content[0])].push_back(i);
  }
  for (Index* index : {&unnormalized_, &normalized_}) {
    for (std::vector<int>& candidates : *index) {
      std::stable_sort(candidates.begin(), candidates.end(), [&](int a, int b) {
        return tokens_[a].content.size() > tokens_[b].content.size();
      });
    }
  }
}

std::vector<AddedTokens::Segment> AddedTokens::Split(
    std::string_view text) const {
  std::vector<Segment> first_pass;
  SplitPass(unnormalized_, text, &first_pass);
  std::vector<Segment> segments;
  for (const Segment& segment : first_pass) {
    if (segment.id >= 0) {
      segments.push_back(segment);
    } else {
      SplitPass(normalized_, segment.text, &segments);
    }
  }
  return segments;
}

void AddedTokens::SplitPass(const Index& index, std::string_view text,
                            std::vector<Segment>* segments) const {
  size_t text_begin = 0;  // of the text not yet in a segment
  size_t i = 0;
  while (i < text.size()) {
    const Token* match = nullptr;
    for (const int candidate : index[static_cast<unsigned char>(text[i])]) {
      if (text.substr(i).starts_with(tokens_[candidate].content)) {
        match = &tokens_[candidate];
        break;
      }
    }
    if (match == nullptr) {
      ++i;
      continue;
    }
    if (text_begin < i) {
      segments->push_back({text.substr(text_begin, i - text_begin), -1});
    }
    segments->push_back({text.substr(i, match->content.size()), match->id});
    i += match->content.size();
    text_begin = i;
  }
  if (text_begin < text.size()) {
    segments->push_back({text.substr(text_begin), -1});
  }
}

}  // namespace moe

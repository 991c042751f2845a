#include "gateway/stop_matcher.h"

#include <algorithm>

namespace moe {

StopMatcher::Result StopMatcher::Push(std::string_view piece) {
  Result result;
  if (matched_) return result;
  held_.append(piece);
  // The earliest occurrence of any stop string wins: the text must stop
  // before the first one the model wrote.
  size_t first = std::string::npos;
  for (const std::string& stop : stops_) {
    first = std::min(first, held_.find(stop));
  }
  if (first != std::string::npos) {
    matched_ = true;
    result.matched = true;
    result.text = held_.substr(0, first);
    held_.clear();
    return result;
  }
  const size_t keep = PartialMatchLength();
  result.text = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return result;
}

std::string StopMatcher::Flush() {
  std::string rest = std::move(held_);
  held_.clear();
  return rest;
}

size_t StopMatcher::PartialMatchLength() const {
  size_t longest = 0;
  for (const std::string& stop : stops_) {
    const size_t limit = std::min(held_.size(), stop.size() - 1);
    for (size_t length = limit; length > longest; --length) {
      if (std::string_view(held_).substr(held_.size() - length) ==
          std::string_view(stop).substr(0, length)) {
        longest = length;
        break;
      }
    }
  }
  return longest;
}

}  // namespace moe

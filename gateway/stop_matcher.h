#ifndef MOE_GATEWAY_STOP_MATCHER_H_
#define MOE_GATEWAY_STOP_MATCHER_H_

#include <string>
#include <string_view>
#include <vector>

namespace moe {

// Finds the first stop string in a stream of text pieces, across piece
// boundaries. Text that could still be the start of a stop string is held
// back until the next piece settles it, so what is released never contains
// (a part of) the stop string that ends the stream.
class StopMatcher {
 public:
  struct Result {
    std::string text;      // safe to release now
    bool matched = false;  // a stop string ended here; `text` stops before it
  };

  explicit StopMatcher(std::vector<std::string> stops)
      : stops_(std::move(stops)) {}

  // Adds a piece. After a match, further pieces are ignored.
  Result Push(std::string_view piece);
  // The held-back text, at the end of the stream (no stop matched).
  std::string Flush();

 private:
  // Length of the longest suffix of `held_` that is a proper prefix of a stop
  // string.
  size_t PartialMatchLength() const;

  const std::vector<std::string> stops_;
  std::string held_;
  bool matched_ = false;
};

}  // namespace moe

#endif  // MOE_GATEWAY_STOP_MATCHER_H_

#ifndef MOE_CORE_TOKENIZER_REGEX_H_
#define MOE_CORE_TOKENIZER_REGEX_H_

#include <cstddef>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace moe {

// A PCRE2 pattern compiled in UTF and Unicode-property mode (\s, \w, \d and
// POSIX classes follow Unicode), JIT-compiled where PCRE2 supports it.
// Immutable once compiled, so one object serves any number of threads: every
// search has its own match data.
class Regex {
 public:
  struct Match {
    size_t begin;
    size_t end;
  };

  // Errors name the pattern and the offset PCRE2 stopped at.
  static absl::StatusOr<Regex> Compile(std::string_view pattern);

  // The successive matches in `text`, which must be valid UTF-8. As in
  // Oniguruma's iterator (the one Hugging Face tokenizers uses), an empty
  // match right where the previous match ended is skipped.
  absl::StatusOr<std::vector<Match>> FindAll(std::string_view text) const;

 private:
  struct Code;  // the compiled pattern

  explicit Regex(std::shared_ptr<const Code> code);

  std::shared_ptr<const Code> code_;
};

}  // namespace moe

#endif  // MOE_CORE_TOKENIZER_REGEX_H_

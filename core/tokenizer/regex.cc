#include "core/tokenizer/regex.h"

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/tokenizer/utf8.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

namespace moe {
namespace {

std::string ErrorMessage(int error) {
  PCRE2_UCHAR message[256];
  if (pcre2_get_error_message(error, message, sizeof(message)) < 0) {
    return absl::StrCat("PCRE2 error ", error);
  }
  return reinterpret_cast<const char*>(message);
}

using MatchData =
    std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)>;

}  // namespace

struct Regex::Code {
  ~Code() { pcre2_code_free(code); }
  pcre2_code* code;
};

Regex::Regex(std::shared_ptr<const Code> code) : code_(std::move(code)) {}

absl::StatusOr<Regex> Regex::Compile(std::string_view pattern) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(
      reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
      PCRE2_UTF | PCRE2_UCP | PCRE2_NEVER_BACKSLASH_C, &error, &offset,
      /*ccontext=*/nullptr);
  if (code == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "regex \"", std::string(pattern), "\" does not compile at offset ",
        offset, ": ", ErrorMessage(error)));
  }
  // Without JIT (a build or CPU without it) the interpreter finds the same
  // matches, only slower.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  return Regex(std::shared_ptr<const Code>(new Code{code}));
}

absl::StatusOr<std::vector<Regex::Match>> Regex::FindAll(
    std::string_view text) const {
  const MatchData data(
      pcre2_match_data_create_from_pattern(code_->code, nullptr),
      &pcre2_match_data_free);
  if (data == nullptr) return absl::ResourceExhaustedError("out of memory");
  auto search = [&](size_t from, uint32_t options) {
    return pcre2_match(code_->code, reinterpret_cast<PCRE2_SPTR>(text.data()),
                       text.size(), from, options, data.get(),
                       /*mcontext=*/nullptr);
  };
  std::vector<Match> matches;
  size_t search_from = 0;
  std::optional<size_t> last_end;
  while (search_from <= text.size()) {
    int found = search(search_from, PCRE2_NO_UTF_CHECK);
    // The JIT's fixed stack can run out on long runs of backtracking; the
    // interpreter keeps its backtracking state on the heap.
    if (found == PCRE2_ERROR_JIT_STACKLIMIT) {
      found = search(search_from, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT);
    }
    if (found == PCRE2_ERROR_NOMATCH) break;
    if (found < 0) {
      return absl::ResourceExhaustedError(
          absl::StrCat("regex match failed: ", ErrorMessage(found)));
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data.get());
    const Match match = {ovector[0], ovector[1]};
    if (match.begin == match.end && last_end == match.end) {
      search_from +=
          search_from < text.size() ? Utf8CharLength(text[search_from]) : 1;
      continue;
    }
    matches.push_back(match);
    search_from = match.end;
    last_end = match.end;
  }
  return matches;
}

}  // namespace moe

#include "core/tokenizer/bpe_pre_tokenizer.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/tokenizer/byte_level.h"
#include "core/util/status_macros.h"

namespace moe {
namespace {

using Behavior = PreTokenizer::Behavior;
using SplitStep = PreTokenizer::SplitStep;
using ByteLevelStep = PreTokenizer::ByteLevelStep;

// GPT-2's pattern, which the ByteLevel pre-tokenizer splits with.
constexpr char kGpt2Pattern[] = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+)"
                                R"(| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Digits splits on Rust's char::is_numeric, which is \p{N}.
constexpr char kDigitPattern[] = R"(\p{N})";

// A pattern matching `literal` as it is: every ASCII character other than a
// letter or digit escaped, which PCRE2 reads as that character itself.
std::string EscapeLiteral(std::string_view literal) {
  std::string pattern;
  for (const char c : literal) {
    if (static_cast<unsigned char>(c) < 0x80 && !absl::ascii_isalnum(c)) {
      pattern += '\\';
    }
    pattern += c;
  }
  return pattern;
}

absl::StatusOr<Regex> CompileAt(const TokenizerJson& where,
                                std::string_view pattern) {
  absl::StatusOr<Regex> regex = Regex::Compile(pattern);
  if (!regex.ok()) return where.Error(regex.status().message());
  return regex;
}

absl::StatusOr<Behavior> ParseBehavior(const TokenizerJson& json) {
  MOE_ASSIGN_OR_RETURN(const TokenizerJson behavior, json.Get("behavior"));
  MOE_ASSIGN_OR_RETURN(const std::string name, behavior.AsString());
  if (name == "Removed") return Behavior::kRemoved;
  if (name == "Isolated") return Behavior::kIsolated;
  if (name == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return Behavior::kMergedWithNext;
  if (name == "Contiguous") return Behavior::kContiguous;
  return behavior.Error(absl::StrCat("unknown behavior \"", name, "\""));
}

absl::StatusOr<SplitStep> ParseSplit(const TokenizerJson& json) {
  MOE_ASSIGN_OR_RETURN(const TokenizerJson pattern, json.Get("pattern"));
  std::string regex;
  if (const auto source = pattern.Find("Regex")) {
    MOE_ASSIGN_OR_RETURN(regex, source->AsString());
  } else if (const auto literal = pattern.Find("String")) {
    MOE_ASSIGN_OR_RETURN(const std::string text, literal->AsString());
    regex = EscapeLiteral(text);
  } else {
    return pattern.Error("expected {\"Regex\": ...} or {\"String\": ...}");
  }
  MOE_ASSIGN_OR_RETURN(const Behavior behavior, ParseBehavior(json));
  MOE_ASSIGN_OR_RETURN(const bool invert, json.Bool("invert", false));
  MOE_ASSIGN_OR_RETURN(Regex compiled, CompileAt(pattern, regex));
  return SplitStep{std::move(compiled), behavior, invert};
}

absl::Status ParseSteps(const TokenizerJson& json,
                        std::vector<PreTokenizer::Step>* steps) {
  MOE_ASSIGN_OR_RETURN(const std::string type, json.Type());
  if (type == "Sequence") {
    MOE_ASSIGN_OR_RETURN(const TokenizerJson list, json.Get("pretokenizers"));
    MOE_RETURN_IF_ERROR(list.ExpectArray());
    for (size_t i = 0; i < list.value().size(); ++i) {
      MOE_RETURN_IF_ERROR(ParseSteps(list.Element(i), steps));
    }
  } else if (type == "ByteLevel") {
    // The defaults are those of tokenizers' ByteLevel.
    MOE_ASSIGN_OR_RETURN(const bool add_prefix_space,
                         json.Bool("add_prefix_space", true));
    MOE_ASSIGN_OR_RETURN(const bool use_regex, json.Bool("use_regex", true));
    ByteLevelStep step{add_prefix_space, std::nullopt};
    if (use_regex) {
      MOE_ASSIGN_OR_RETURN(Regex regex, CompileAt(json, kGpt2Pattern));
      step.split = SplitStep{std::move(regex), Behavior::kIsolated, false};
    }
    steps->push_back(std::move(step));
  } else if (type == "Digits") {
    MOE_ASSIGN_OR_RETURN(const bool individual,
                         json.Bool("individual_digits", false));
    MOE_ASSIGN_OR_RETURN(Regex regex, CompileAt(json, kDigitPattern));
    steps->push_back(SplitStep{
        std::move(regex),
        individual ? Behavior::kIsolated : Behavior::kContiguous, false});
  } else if (type == "Split") {
    MOE_ASSIGN_OR_RETURN(SplitStep step, ParseSplit(json));
    steps->push_back(std::move(step));
  } else {
    return json.Error(
        absl::StrCat("unsupported pre_tokenizer type \"", type,
                     "\" (supported: ByteLevel, Digits, Split, Sequence)"));
  }
  return absl::OkStatus();
}

// Appends the words `step` cuts `text` into, as tokenizers'
// NormalizedString::split: the matches and the text between them are
// consecutive spans, which the behavior then drops or merges.
absl::Status Apply(const SplitStep& step, std::string_view text,
                   std::vector<std::string>* words) {
  struct Span {
    size_t begin;
    size_t end;
    bool match;  // of the pattern, or of the text between when inverted
  };
  MOE_ASSIGN_OR_RETURN(const std::vector<Regex::Match> matches,
                       step.regex.FindAll(text));
  std::vector<Span> spans;
  size_t previous_end = 0;
  for (const Regex::Match& match : matches) {
    if (previous_end != match.begin) {
      spans.push_back({previous_end, match.begin, step.invert});
    }
    spans.push_back({match.begin, match.end, !step.invert});
    previous_end = match.end;
  }
  if (previous_end != text.size()) {
    spans.push_back({previous_end, text.size(), step.invert});
  }

  std::vector<Span> kept;
  bool previous_match = false;
  switch (step.behavior) {
    case Behavior::kRemoved:
      std::copy_if(spans.begin(), spans.end(), std::back_inserter(kept),
                   [](const Span& span) { return !span.match; });
      break;
    case Behavior::kIsolated:
      kept = std::move(spans);
      break;
    case Behavior::kContiguous:
      for (const Span& span : spans) {
        if (span.match == previous_match && !kept.empty()) {
          kept.back().end = span.end;
        } else {
          kept.push_back(span);
        }
        previous_match = span.match;
      }
      break;
    case Behavior::kMergedWithPrevious:
      for (const Span& span : spans) {
        if (span.match && !previous_match && !kept.empty()) {
          kept.back().end = span.end;
        } else {
          kept.push_back(span);
        }
        previous_match = span.match;
      }
      break;
    case Behavior::kMergedWithNext:
      for (auto span = spans.rbegin(); span != spans.rend(); ++span) {
        if (span->match && !previous_match && !kept.empty()) {
          kept.back().begin = span->begin;
        } else {
          kept.push_back(*span);
        }
        previous_match = span->match;
      }
      std::reverse(kept.begin(), kept.end());
      break;
  }
  for (const Span& span : kept) {
    if (span.end > span.begin) {
      words->emplace_back(text.substr(span.begin, span.end - span.begin));
    }
  }
  return absl::OkStatus();
}

absl::Status Apply(const ByteLevelStep& step, std::string_view text,
                   std::vector<std::string>* words) {
  std::string prefixed;
  if (step.add_prefix_space && !text.starts_with(' ')) {
    prefixed = " ";
    prefixed += text;
    text = prefixed;
  }
  const size_t first = words->size();
  if (step.split.has_value()) {
    MOE_RETURN_IF_ERROR(Apply(*step.split, text, words));
  } else if (!text.empty()) {
    words->emplace_back(text);
  }
  for (size_t i = first; i < words->size(); ++i) {
    (*words)[i] = BytesToByteLevel((*words)[i]);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<PreTokenizer> PreTokenizer::FromJson(const TokenizerJson& json) {
  std::vector<Step> steps;
  MOE_RETURN_IF_ERROR(ParseSteps(json, &steps));
  return PreTokenizer(std::move(steps));
}

absl::StatusOr<std::vector<std::string>> PreTokenizer::Split(
    std::string_view text) const {
  std::vector<std::string> words;
  if (!text.empty()) words.emplace_back(text);
  for (const Step& step : steps_) {
    std::vector<std::string> next;
    for (const std::string& word : words) {
      MOE_RETURN_IF_ERROR(std::visit(
          [&](const auto& s) { return Apply(s, word, &next); }, step));
    }
    words = std::move(next);
  }
  return words;
}

bool PreTokenizer::has_byte_level() const {
  return std::any_of(steps_.begin(), steps_.end(), [](const Step& step) {
    return std::holds_alternative<ByteLevelStep>(step);
  });
}

}  // namespace moe

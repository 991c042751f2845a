// Encodes and decodes with a tokenizer.json for tokenizer_reference_test.py.
//
// Usage: tokenize_tool TOKENIZER_JSON
// Reads one request a line from stdin and writes one line per request:
//   e HEX          ->  the ids of the bytes HEX spells, separated by spaces
//   d [ID ID ...]  ->  the decode of the ids, as hex
// Hex keeps newlines and ill-formed UTF-8 intact. A failed request answers
// "error MESSAGE".
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/tokenizer/bpe_tokenizer.h"

namespace {

absl::StatusOr<std::string> Answer(const moe::Tokenizer& tokenizer,
                                   const std::string& request) {
  const std::string argument = request.size() > 2 ? request.substr(2) : "";
  if (request.starts_with("e")) {
    const std::string bytes = absl::HexStringToBytes(argument);
    absl::StatusOr<std::vector<int32_t>> ids = tokenizer.Encode(bytes);
    if (!ids.ok()) return ids.status();
    return absl::StrJoin(*ids, " ");
  }
  if (request.starts_with("d")) {
    std::vector<int32_t> ids;
    for (const absl::string_view field :
         absl::StrSplit(argument, ' ', absl::SkipEmpty())) {
      int32_t id = 0;
      if (!absl::SimpleAtoi(field, &id)) {
        return absl::InvalidArgumentError("bad id");
      }
      ids.push_back(id);
    }
    absl::StatusOr<std::string> text = tokenizer.Decode(ids);
    if (!text.ok()) return text.status();
    return absl::BytesToHexString(*text);
  }
  return absl::InvalidArgumentError("unknown request");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: tokenize_tool TOKENIZER_JSON\n";
    return 2;
  }
  absl::StatusOr<std::unique_ptr<moe::Tokenizer>> tokenizer =
      moe::LoadBpeTokenizer(argv[1], /*bos_id=*/std::nullopt);
  if (!tokenizer.ok()) {
    std::cerr << tokenizer.status() << "\n";
    return 1;
  }
  std::string request;
  while (std::getline(std::cin, request)) {
    const absl::StatusOr<std::string> answer = Answer(**tokenizer, request);
    if (answer.ok()) {
      std::cout << *answer << "\n";
    } else {
      std::cout << "error " << answer.status().message() << "\n";
    }
  }
  return 0;
}

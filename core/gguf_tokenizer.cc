#include "core/gguf_tokenizer.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <string_view>
#include <system_error>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "core/file_util.h"
#include "core/status_macros.h"
#include "core/utf8.h"

namespace moe {
namespace {

using nlohmann::json;

constexpr char kModelKey[] = "tokenizer.ggml.model";
constexpr char kPreKey[] = "tokenizer.ggml.pre";
constexpr char kTokensKey[] = "tokenizer.ggml.tokens";
constexpr char kTypesKey[] = "tokenizer.ggml.token_type";
constexpr char kScoresKey[] = "tokenizer.ggml.scores";
constexpr char kMergesKey[] = "tokenizer.ggml.merges";

// GGUF token types (llama.cpp's llama_token_type). They are SentencePiece's
// piece types, with the same numbers.
enum TokenType : int {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// `text` quoted for an error message: control characters escaped, and every
// byte past ASCII too when it is not UTF-8.
std::string Quoted(absl::string_view text) {
  return absl::StrCat("\"",
                      IsValidUtf8(std::string_view(text.data(), text.size()))
                          ? absl::Utf8SafeCHexEscape(text)
                          : absl::CHexEscape(text),
                      "\"");
}

std::optional<int64_t> AsInt64(const json& value) {
  if (value.is_number_unsigned()) {
    const uint64_t v = value.get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return std::nullopt;
    }
    return static_cast<int64_t>(v);
  }
  if (value.is_number_integer()) return value.get<int64_t>();
  return std::nullopt;
}

// Typed access to the GGUF metadata; every error names the file and the key.
class Metadata {
 public:
  Metadata(const json& metadata, const std::string& source)
      : metadata_(metadata), source_(source) {}

  absl::Status Error(absl::string_view key, absl::string_view problem) const {
    return absl::InvalidArgumentError(
        absl::StrCat(source_, ": ", key, " ", problem));
  }

  // Absent keys are nullopt; present ones must have the right type.
  absl::StatusOr<std::optional<std::string>> String(
      absl::string_view key) const {
    const json* value = Find(key);
    if (value == nullptr) return std::nullopt;
    if (!value->is_string()) return Error(key, "is not a string");
    std::string text = value->get<std::string>();
    if (!IsValidUtf8(std::string_view(text.data(), text.size())))
      return Error(key, "is not valid UTF-8");
    return text;
  }

  absl::StatusOr<bool> Bool(absl::string_view key, bool fallback) const {
    const json* value = Find(key);
    if (value == nullptr) return fallback;
    if (!value->is_boolean()) return Error(key, "is not a bool");
    return value->get<bool>();
  }

  absl::StatusOr<std::optional<int64_t>> Int(absl::string_view key) const {
    const json* value = Find(key);
    if (value == nullptr) return std::nullopt;
    std::optional<int64_t> number = AsInt64(*value);
    if (!number) return Error(key, "is not an integer");
    return number;
  }

  // A token id, which must lie in [0, vocab_size).
  absl::StatusOr<std::optional<int>> TokenId(absl::string_view key,
                                             int vocab_size) const {
    MOE_ASSIGN_OR_RETURN(std::optional<int64_t> id, Int(key));
    if (!id) return std::nullopt;
    if (*id < 0 || *id >= vocab_size) {
      return Error(key, absl::StrCat(*id, " is outside the vocabulary [0, ",
                                     vocab_size, ")"));
    }
    return static_cast<int>(*id);
  }

  // A required array, each element converted by `convert`, which returns
  // nullopt for an element of the wrong type, described by `element`.
  template <typename T, typename Convert>
  absl::StatusOr<std::vector<T>> Array(absl::string_view key,
                                       absl::string_view element,
                                       Convert convert) const {
    const json* value = Find(key);
    if (value == nullptr) return Error(key, "is missing");
    if (!value->is_array()) return Error(key, "is not an array");
    std::vector<T> result;
    result.reserve(value->size());
    for (const json& item : *value) {
      std::optional<T> converted = convert(item);
      if (!converted) {
        return Error(absl::StrCat(key, "[", result.size(), "]"),
                     absl::StrCat("is not ", element));
      }
      result.push_back(std::move(*converted));
    }
    return result;
  }

  absl::StatusOr<std::vector<std::string>> Strings(
      absl::string_view key) const {
    return Array<std::string>(key, "a string",
                              [](const json& v) -> std::optional<std::string> {
                                if (!v.is_string()) return std::nullopt;
                                return v.get<std::string>();
                              });
  }

  absl::StatusOr<std::vector<int64_t>> Integers(absl::string_view key) const {
    return Array<int64_t>(key, "an integer", AsInt64);
  }

  absl::StatusOr<std::vector<float>> Numbers(absl::string_view key) const {
    return Array<float>(key, "a number",
                        [](const json& v) -> std::optional<float> {
                          if (!v.is_number()) return std::nullopt;
                          return v.get<float>();
                        });
  }

 private:
  const json* Find(absl::string_view key) const {
    const auto it = metadata_.find(std::string(key));
    return it == metadata_.end() ? nullptr : &*it;
  }

  const json& metadata_;
  const std::string& source_;
};

// The metadata both formats need, validated: every token is non-empty,
// unique, valid UTF-8 and typed; every special id lies in the vocabulary.
struct Vocabulary {
  std::vector<std::string> tokens;
  std::vector<int> types;
  std::optional<int> bos, eos, unk, pad;
  std::vector<int> eos_ids;  // EOS, end of turn, end of message
  bool add_bos = false;
  bool add_eos = false;
  std::optional<std::string> chat_template;
  std::optional<int64_t> context_length;
};

absl::StatusOr<Vocabulary> ReadVocabulary(const Metadata& metadata,
                                          bool add_bos_default) {
  Vocabulary vocab;
  MOE_ASSIGN_OR_RETURN(vocab.tokens, metadata.Strings(kTokensKey));
  const int size = static_cast<int>(vocab.tokens.size());
  if (size == 0) return metadata.Error(kTokensKey, "is empty");
  std::unordered_map<std::string_view, int> seen;
  for (int id = 0; id < size; ++id) {
    const std::string& token = vocab.tokens[id];
    const std::string where = absl::StrCat(kTokensKey, "[", id, "]");
    if (token.empty()) return metadata.Error(where, "is empty");
    if (!IsValidUtf8(std::string_view(token.data(), token.size()))) {
      return metadata.Error(where,
                            absl::StrCat(Quoted(token), " is not valid UTF-8"));
    }
    const auto [it, inserted] = seen.emplace(token, id);
    if (!inserted) {
      return metadata.Error(
          where, absl::StrCat(Quoted(token), " repeats token ", it->second));
    }
  }

  MOE_ASSIGN_OR_RETURN(std::vector<int64_t> types,
                       metadata.Integers(kTypesKey));
  if (types.size() != vocab.tokens.size()) {
    return metadata.Error(kTypesKey,
                          absl::StrCat("has ", types.size(), " entries but ",
                                       kTokensKey, " has ", size));
  }
  for (int id = 0; id < size; ++id) {
    if (types[id] < kNormal || types[id] > kByte) {
      return metadata.Error(
          absl::StrCat(kTypesKey, "[", id, "]"),
          absl::StrCat("is ", types[id], ", not a token type (1 to 6)"));
    }
    vocab.types.push_back(static_cast<int>(types[id]));
  }

  MOE_ASSIGN_OR_RETURN(vocab.bos,
                       metadata.TokenId("tokenizer.ggml.bos_token_id", size));
  MOE_ASSIGN_OR_RETURN(vocab.eos,
                       metadata.TokenId("tokenizer.ggml.eos_token_id", size));
  MOE_ASSIGN_OR_RETURN(
      vocab.unk, metadata.TokenId("tokenizer.ggml.unknown_token_id", size));
  MOE_ASSIGN_OR_RETURN(
      vocab.pad, metadata.TokenId("tokenizer.ggml.padding_token_id", size));
  MOE_ASSIGN_OR_RETURN(std::optional<int> eot,
                       metadata.TokenId("tokenizer.ggml.eot_token_id", size));
  MOE_ASSIGN_OR_RETURN(std::optional<int> eom,
                       metadata.TokenId("tokenizer.ggml.eom_token_id", size));
  for (const std::optional<int>& id : {vocab.eos, eot, eom}) {
    if (id && std::find(vocab.eos_ids.begin(), vocab.eos_ids.end(), *id) ==
                  vocab.eos_ids.end()) {
      vocab.eos_ids.push_back(*id);
    }
  }

  // Without a BOS token there is none to add, whatever the default; a file
  // that asks for one anyway is refused, as llama.cpp refuses it.
  MOE_ASSIGN_OR_RETURN(vocab.add_bos,
                       metadata.Bool("tokenizer.ggml.add_bos_token",
                                     add_bos_default && vocab.bos.has_value()));
  if (vocab.add_bos && !vocab.bos) {
    return metadata.Error("tokenizer.ggml.add_bos_token",
                          "is true but tokenizer.ggml.bos_token_id is missing");
  }
  MOE_ASSIGN_OR_RETURN(vocab.add_eos,
                       metadata.Bool("tokenizer.ggml.add_eos_token", false));
  if (vocab.add_eos && !vocab.eos) {
    return metadata.Error("tokenizer.ggml.add_eos_token",
                          "is true but tokenizer.ggml.eos_token_id is missing");
  }

  MOE_ASSIGN_OR_RETURN(vocab.chat_template,
                       metadata.String("tokenizer.chat_template"));
  MOE_ASSIGN_OR_RETURN(std::optional<std::string> architecture,
                       metadata.String("general.architecture"));
  if (architecture) {
    MOE_ASSIGN_OR_RETURN(vocab.context_length,
                         metadata.Int(*architecture + ".context_length"));
  }
  return vocab;
}

// tokenizer_config.json: what transformers reads beside the tokenizer file,
// and where this project reads add_bos_token.
json TokenizerConfig(const Vocabulary& vocab, const char* tokenizer_class) {
  json config = json::object();
  config["add_bos_token"] = vocab.add_bos;
  config["add_eos_token"] = vocab.add_eos;
  const std::pair<const char*, std::optional<int>> named[] = {
      {"bos_token", vocab.bos},
      {"eos_token", vocab.eos},
      {"unk_token", vocab.unk},
      {"pad_token", vocab.pad}};
  for (const auto& [key, id] : named) {
    if (id) config[key] = vocab.tokens[*id];
  }
  if (vocab.chat_template) config["chat_template"] = *vocab.chat_template;
  if (vocab.context_length) config["model_max_length"] = *vocab.context_length;
  config["tokenizer_class"] = tokenizer_class;
  return config;
}

// ---- gpt2: byte-level BPE, written as the tokenizers library's JSON. ----

json ByteLevel(bool use_regex, bool trim_offsets) {
  json byte_level = json::object();
  byte_level["type"] = "ByteLevel";
  byte_level["add_prefix_space"] = false;
  byte_level["trim_offsets"] = trim_offsets;
  byte_level["use_regex"] = use_regex;
  return byte_level;
}

json IsolatingSplit(const char* regex) {
  json split = json::object();
  split["type"] = "Split";
  split["pattern"] = {{"Regex", regex}};
  split["behavior"] = "Isolated";
  split["invert"] = false;
  return split;
}

json Sequence(std::vector<json> pre_tokenizers) {
  json sequence = json::object();
  sequence["type"] = "Sequence";
  sequence["pretokenizers"] = std::move(pre_tokenizers);
  return sequence;
}

// What a tokenizer.ggml.pre name stands for. llama.cpp's converter names the
// pre-tokenizer of the model's tokenizer.json by hashing its output, and
// llama.cpp re-implements each as regexes (llama-vocab.cpp); these are the
// tokenizer.json components those names came from.
struct PreTokenizer {
  std::vector<std::string> names;
  json normalizer;  // null: none
  json pre_tokenizer;
  bool ignore_merges;
  bool add_bos;  // llama.cpp's default when the file has no add_bos_token
};

constexpr char kLlama3Regex[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr char kQwen2Regex[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

const std::vector<PreTokenizer>& PreTokenizers() {
  static const std::vector<PreTokenizer> pre_tokenizers = [] {
    json digits = json::object();
    digits["type"] = "Digits";
    digits["individual_digits"] = true;
    json nfc = json::object();
    nfc["type"] = "NFC";
    return std::vector<PreTokenizer>{
        // GPT-2's own regex inside ByteLevel. "default" is what llama.cpp
        // assumes for files that name no pre-tokenizer; it then also splits
        // off punctuation runs and digit triples, a guess of its own, where
        // this takes GPT-2's split, the byte-level BPE baseline.
        {{"default", "gpt-2", "gpt2"},
         nullptr,
         ByteLevel(/*use_regex=*/true, /*trim_offsets=*/true),
         false,
         false},
        // Each digit alone, then GPT-2's regex (StarCoder, SmolLM).
        {{"smollm", "starcoder"},
         nullptr,
         Sequence({digits, ByteLevel(true, true)}),
         false,
         false},
        {{"llama-bpe", "llama3", "llama-v3"},
         nullptr,
         Sequence({IsolatingSplit(kLlama3Regex), ByteLevel(false, true)}),
         true,
         true},
        {{"qwen2"},
         nfc,
         Sequence({IsolatingSplit(kQwen2Regex), ByteLevel(false, false)}),
         false,
         false},
    };
  }();
  return pre_tokenizers;
}

absl::StatusOr<const PreTokenizer*> FindPreTokenizer(const Metadata& metadata,
                                                     const std::string& name) {
  std::vector<std::string> supported;
  for (const PreTokenizer& pre : PreTokenizers()) {
    for (const std::string& known : pre.names) {
      if (known == name) return &pre;
      supported.push_back(known);
    }
  }
  return metadata.Error(
      kPreKey, absl::StrCat(Quoted(name), " is not supported (supported: ",
                            absl::StrJoin(supported, ", "), ")"));
}

absl::StatusOr<json> BpeTokenizerJson(const Metadata& metadata,
                                      const Vocabulary& vocab,
                                      const PreTokenizer& pre) {
  json token_ids = json::object();
  for (size_t id = 0; id < vocab.tokens.size(); ++id) {
    token_ids[vocab.tokens[id]] = id;
  }

  // The tokenizers library refuses a merge whose parts or result are not
  // tokens; so does this, naming the merge.
  MOE_ASSIGN_OR_RETURN(std::vector<std::string> merges,
                       metadata.Strings(kMergesKey));
  for (size_t i = 0; i < merges.size(); ++i) {
    const std::string& merge = merges[i];
    const std::string where =
        absl::StrCat(kMergesKey, "[", i, "] ", Quoted(merge));
    // Split as llama.cpp splits it: at the first space past the first byte.
    const size_t space = merge.find(' ', 1);
    if (space == std::string::npos) {
      return metadata.Error(where, "is not two tokens separated by a space");
    }
    const std::string left = merge.substr(0, space);
    const std::string right = merge.substr(space + 1);
    for (const std::string& part : {left, right}) {
      if (!token_ids.contains(part)) {
        return metadata.Error(where, absl::StrCat("names ", Quoted(part),
                                                  ", which is not a token"));
      }
    }
    if (!token_ids.contains(left + right)) {
      return metadata.Error(where, absl::StrCat("makes ", Quoted(left + right),
                                                ", which is not a token"));
    }
  }

  // Control and unknown tokens are special (skipped when decoding without
  // special tokens); user-defined ones are plain text matched whole.
  json added_tokens = json::array();
  for (size_t id = 0; id < vocab.tokens.size(); ++id) {
    const int type = vocab.types[id];
    if (type != kControl && type != kUnknown && type != kUserDefined) {
      continue;
    }
    json added = json::object();
    added["id"] = id;
    added["content"] = vocab.tokens[id];
    added["single_word"] = false;
    added["lstrip"] = false;
    added["rstrip"] = false;
    added["normalized"] = false;
    added["special"] = type != kUserDefined;
    added_tokens.push_back(std::move(added));
  }

  json model = json::object();
  model["type"] = "BPE";
  model["dropout"] = nullptr;
  model["unk_token"] = nullptr;
  model["continuing_subword_prefix"] = nullptr;
  model["end_of_word_suffix"] = nullptr;
  model["fuse_unk"] = false;
  model["byte_fallback"] = false;
  model["ignore_merges"] = pre.ignore_merges;
  model["vocab"] = std::move(token_ids);
  model["merges"] = std::move(merges);

  // The post-processor adds no BOS: tokenizer_config.json's add_bos_token
  // says whether prompts start with one.
  json post_processor = ByteLevel(true, false);
  post_processor["add_prefix_space"] = true;
  json decoder = ByteLevel(true, true);
  decoder["add_prefix_space"] = true;

  json tokenizer = json::object();
  tokenizer["version"] = "1.0";
  tokenizer["truncation"] = nullptr;
  tokenizer["padding"] = nullptr;
  tokenizer["added_tokens"] = std::move(added_tokens);
  tokenizer["normalizer"] = pre.normalizer;
  tokenizer["pre_tokenizer"] = pre.pre_tokenizer;
  tokenizer["post_processor"] = std::move(post_processor);
  tokenizer["decoder"] = std::move(decoder);
  tokenizer["model"] = std::move(model);
  return tokenizer;
}

// ---- llama: SentencePiece, written as a ModelProto. ----

// Protocol buffer wire format, enough for the fields of
// sentencepiece_model.proto written here.
class ProtoWriter {
 public:
  void Int(int field, int64_t value) {
    Tag(field, 0);
    // Negative int32 values are sign-extended to ten bytes, as protobuf does.
    Varint(static_cast<uint64_t>(value));
  }
  void Bool(int field, bool value) { Int(field, value ? 1 : 0); }
  void Float(int field, float value) {
    Tag(field, 5);
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof(bits));
    for (int shift = 0; shift < 32; shift += 8) {
      out_.push_back(static_cast<char>(bits >> shift));
    }
  }
  void Bytes(int field, std::string_view value) {
    Tag(field, 2);
    Varint(value.size());
    out_.append(value);
  }
  void Message(int field, const ProtoWriter& message) {
    Bytes(field, message.out_);
  }
  const std::string& data() const { return out_; }

 private:
  void Tag(int field, int wire_type) {
    Varint(static_cast<uint64_t>(field) << 3 | wire_type);
  }
  void Varint(uint64_t value) {
    while (value >= 0x80) {
      out_.push_back(static_cast<char>(value | 0x80));
      value >>= 7;
    }
    out_.push_back(static_cast<char>(value));
  }

  std::string out_;
};

// sentencepiece_model.proto field numbers.
namespace spm {
constexpr int kPieces = 1, kTrainerSpec = 2, kNormalizerSpec = 3;
constexpr int kPiece = 1, kScore = 2, kType = 3;
constexpr int kModelType = 3, kVocabSize = 4, kByteFallback = 35, kUnkId = 40,
              kBosId = 41, kEosId = 42, kPadId = 43, kUnkPiece = 45,
              kBosPiece = 46, kEosPiece = 47, kPadPiece = 48;
constexpr int kBpe = 2;
constexpr int kName = 1, kAddDummyPrefix = 3, kRemoveExtraWhitespaces = 4,
              kEscapeWhitespaces = 5;
}  // namespace spm

// SentencePiece refuses a model whose byte pieces are not exactly <0x00> to
// <0xFF> or whose unknown piece is not exactly one; this says so first, by
// token id. Returns the unknown piece's id.
absl::StatusOr<int> CheckSentencePieceTypes(const Metadata& metadata,
                                            const Vocabulary& vocab) {
  std::optional<int> unknown;
  int bytes = 0;
  for (size_t id = 0; id < vocab.tokens.size(); ++id) {
    const std::string& token = vocab.tokens[id];
    if (vocab.types[id] == kUnknown) {
      if (unknown) {
        return metadata.Error(
            kTypesKey, absl::StrCat("marks tokens ", *unknown, " and ", id,
                                    " unknown (2); SentencePiece allows one"));
      }
      unknown = static_cast<int>(id);
    }
    if (vocab.types[id] == kByte) {
      const bool hex =
          token.size() == 6 && token.starts_with("<0x") && token[5] == '>' &&
          absl::ascii_isxdigit(token[3]) && absl::ascii_isxdigit(token[4]) &&
          !absl::ascii_islower(token[3]) && !absl::ascii_islower(token[4]);
      if (!hex) {
        return metadata.Error(
            kTypesKey, absl::StrCat("marks token ", id, " ", Quoted(token),
                                    " a byte (6), but it is not <0xNN>"));
      }
      ++bytes;
    }
  }
  if (!unknown) {
    return metadata.Error(
        kTypesKey, "marks no token unknown (2); SentencePiece needs one");
  }
  // Tokens are unique, so 256 well-formed byte tokens are all 256 bytes.
  if (bytes != 0 && bytes != 256) {
    return metadata.Error(
        kTypesKey, absl::StrCat("marks ", bytes,
                                " tokens as bytes (6); SentencePiece's byte "
                                "fallback needs all 256"));
  }
  return *unknown;
}

absl::StatusOr<std::string> SentencePieceModel(const Metadata& metadata,
                                               const Vocabulary& vocab) {
  MOE_ASSIGN_OR_RETURN(const int unk_id,
                       CheckSentencePieceTypes(metadata, vocab));
  MOE_ASSIGN_OR_RETURN(std::vector<float> scores, metadata.Numbers(kScoresKey));
  if (scores.size() != vocab.tokens.size()) {
    return metadata.Error(
        kScoresKey, absl::StrCat("has ", scores.size(), " entries but ",
                                 kTokensKey, " has ", vocab.tokens.size()));
  }
  // llama.cpp's defaults: the text as given, a space before it.
  MOE_ASSIGN_OR_RETURN(
      const bool add_dummy_prefix,
      metadata.Bool("tokenizer.ggml.add_space_prefix", /*fallback=*/true));
  MOE_ASSIGN_OR_RETURN(
      const bool remove_extra_whitespaces,
      metadata.Bool("tokenizer.ggml.remove_extra_whitespaces", false));

  ProtoWriter model;
  bool byte_fallback = false;
  for (size_t id = 0; id < vocab.tokens.size(); ++id) {
    ProtoWriter piece;
    piece.Bytes(spm::kPiece, vocab.tokens[id]);
    piece.Float(spm::kScore, scores[id]);
    piece.Int(spm::kType, vocab.types[id]);
    model.Message(spm::kPieces, piece);
    byte_fallback = byte_fallback || vocab.types[id] == kByte;
  }

  // BPE: llama.cpp tokenizes every "llama" vocabulary by merging the pair
  // whose merged piece scores highest, which is SentencePiece's BPE; the
  // models converted this way (Llama, Mistral, Mixtral) were trained as BPE.
  // Unigram vocabularies come as GGUF model "t5". Byte pieces mean unknown
  // characters fall back to bytes, as llama.cpp does.
  ProtoWriter trainer;
  trainer.Int(spm::kModelType, spm::kBpe);
  trainer.Int(spm::kVocabSize, static_cast<int64_t>(vocab.tokens.size()));
  trainer.Bool(spm::kByteFallback, byte_fallback);
  const std::tuple<int, int, std::optional<int>> specials[] = {
      {spm::kUnkId, spm::kUnkPiece, unk_id},
      {spm::kBosId, spm::kBosPiece, vocab.bos},
      {spm::kEosId, spm::kEosPiece, vocab.eos},
      {spm::kPadId, spm::kPadPiece, vocab.pad}};
  for (const auto& [id_field, piece_field, id] : specials) {
    trainer.Int(id_field, id.value_or(-1));
    if (id) trainer.Bytes(piece_field, vocab.tokens[*id]);
  }

  ProtoWriter normalizer;
  normalizer.Bytes(spm::kName, "identity");
  normalizer.Bool(spm::kAddDummyPrefix, add_dummy_prefix);
  normalizer.Bool(spm::kRemoveExtraWhitespaces, remove_extra_whitespaces);
  normalizer.Bool(spm::kEscapeWhitespaces, true);

  model.Message(spm::kTrainerSpec, trainer);
  model.Message(spm::kNormalizerSpec, normalizer);
  return model.data();
}

// ---- Output. ----

struct OutputFile {
  std::string name;
  std::string contents;
};

// Validation keeps invalid UTF-8 out of `value`; should any get in, dump()
// throws, which must not escape as an exception.
absl::StatusOr<std::string> DumpJson(const json& value,
                                     const std::string& path) {
  try {
    return value.dump(2) + "\n";
  } catch (const json::exception& e) {
    return absl::InternalError(absl::StrCat(path, ": ", e.what()));
  }
}

}  // namespace

absl::StatusOr<GgufTokenizerInfo> WriteGgufTokenizer(
    const json& metadata, const std::string& source,
    const std::string& directory) {
  const Metadata md(metadata, source);
  MOE_ASSIGN_OR_RETURN(std::optional<std::string> model, md.String(kModelKey));
  if (!model) {
    return md.Error(kModelKey, "is missing: the file has no tokenizer");
  }

  Vocabulary vocab;
  std::vector<OutputFile> files;
  if (*model == "gpt2") {
    MOE_ASSIGN_OR_RETURN(std::optional<std::string> pre_name,
                         md.String(kPreKey));
    MOE_ASSIGN_OR_RETURN(const PreTokenizer* pre,
                         FindPreTokenizer(md, pre_name.value_or("default")));
    MOE_ASSIGN_OR_RETURN(vocab, ReadVocabulary(md, pre->add_bos));
    MOE_ASSIGN_OR_RETURN(json tokenizer, BpeTokenizerJson(md, vocab, *pre));
    MOE_ASSIGN_OR_RETURN(std::string text,
                         DumpJson(tokenizer, directory + "/tokenizer.json"));
    files.push_back({"tokenizer.json", std::move(text)});
    MOE_ASSIGN_OR_RETURN(
        text, DumpJson(TokenizerConfig(vocab, "PreTrainedTokenizerFast"),
                       directory + "/tokenizer_config.json"));
    files.push_back({"tokenizer_config.json", std::move(text)});
  } else if (*model == "llama") {
    MOE_ASSIGN_OR_RETURN(vocab, ReadVocabulary(md, /*add_bos_default=*/true));
    MOE_ASSIGN_OR_RETURN(std::string proto, SentencePieceModel(md, vocab));
    files.push_back({"tokenizer.model", std::move(proto)});
    MOE_ASSIGN_OR_RETURN(std::string text,
                         DumpJson(TokenizerConfig(vocab, "LlamaTokenizer"),
                                  directory + "/tokenizer_config.json"));
    files.push_back({"tokenizer_config.json", std::move(text)});
  } else {
    return md.Error(kModelKey,
                    absl::StrCat(Quoted(*model),
                                 " is not supported (supported: gpt2, the "
                                 "byte-level BPE; llama, SentencePiece)"));
  }

  std::error_code error;
  std::filesystem::create_directories(directory, error);
  if (error) {
    return absl::PermissionDeniedError(absl::StrCat(
        "cannot create directory ", directory, ": ", error.message()));
  }
  for (const OutputFile& file : files) {
    MOE_RETURN_IF_ERROR(
        WriteStringToFile(directory + "/" + file.name, file.contents));
  }

  GgufTokenizerInfo info;
  info.vocab_size = static_cast<int>(vocab.tokens.size());
  info.bos_id = vocab.bos.value_or(-1);
  info.eos_ids = vocab.eos_ids;
  info.add_bos = vocab.add_bos;
  return info;
}

}  // namespace moe

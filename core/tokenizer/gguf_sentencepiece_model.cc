#include "core/tokenizer/gguf_sentencepiece_model.h"

#include <optional>
#include <tuple>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/tokenizer/proto_writer.h"
#include "core/util/status_macros.h"

namespace moe::gguf {
namespace {

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

}  // namespace

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

}  // namespace moe::gguf

// Built as its own module: the SentencePiece header declares
// `namespace absl { using std::string_view; }`, which clashes with Abseil, so
// no Abseil header may be included here.
#include "core/tokenizer/sentencepiece_shim.h"

#include <sentencepiece_processor.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

void SetError(const std::string& message, char* error, size_t error_size) {
  if (error == nullptr || error_size == 0) return;
  const size_t length = std::min(message.size(), error_size - 1);
  std::memcpy(error, message.data(), length);
  error[length] = '\0';
}

const sentencepiece::SentencePieceProcessor* AsProcessor(const void* handle) {
  return static_cast<const sentencepiece::SentencePieceProcessor*>(handle);
}

}  // namespace

extern "C" {

void* moe_spm_load(const char* model_path, char* error, size_t error_size) {
  auto* processor = new sentencepiece::SentencePieceProcessor();
  const auto status = processor->Load(model_path);
  if (!status.ok()) {
    SetError(status.ToString(), error, error_size);
    delete processor;
    return nullptr;
  }
  return processor;
}

void moe_spm_free(void* processor) {
  delete static_cast<sentencepiece::SentencePieceProcessor*>(processor);
}

void moe_spm_release(void* buffer) { std::free(buffer); }

int moe_spm_vocab_size(const void* processor) {
  return AsProcessor(processor)->GetPieceSize();
}

int moe_spm_bos_id(const void* processor) {
  return AsProcessor(processor)->bos_id();
}

int moe_spm_eos_id(const void* processor) {
  return AsProcessor(processor)->eos_id();
}

int moe_spm_encode(const void* processor, const char* text, size_t length,
                   int** ids, size_t* count, char* error, size_t error_size) {
  std::vector<int> pieces;
  const auto status =
      AsProcessor(processor)->Encode(std::string(text, length), &pieces);
  if (!status.ok()) {
    SetError(status.ToString(), error, error_size);
    return 1;
  }
  *count = pieces.size();
  *ids = static_cast<int*>(
      std::malloc(std::max<size_t>(1, pieces.size()) * sizeof(int)));
  std::copy(pieces.begin(), pieces.end(), *ids);
  return 0;
}

int moe_spm_decode(const void* processor, const int* ids, size_t count,
                   char** text, size_t* length, char* error,
                   size_t error_size) {
  std::string decoded;
  const auto status = AsProcessor(processor)->Decode(
      std::vector<int>(ids, ids + count), &decoded);
  if (!status.ok()) {
    SetError(status.ToString(), error, error_size);
    return 1;
  }
  *length = decoded.size();
  *text = static_cast<char*>(std::malloc(std::max<size_t>(1, decoded.size())));
  std::memcpy(*text, decoded.data(), decoded.size());
  return 0;
}

}  // extern "C"

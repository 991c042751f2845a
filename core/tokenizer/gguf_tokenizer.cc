#include "core/tokenizer/gguf_tokenizer.h"

#include <filesystem>
#include <optional>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/tokenizer/gguf_bpe_json.h"
#include "core/tokenizer/gguf_sentencepiece_model.h"
#include "core/tokenizer/gguf_vocabulary.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"

namespace moe {
namespace {

using nlohmann::json;

// tokenizer_config.json: what transformers reads beside the tokenizer file,
// and where this project reads add_bos_token.
json TokenizerConfig(const gguf::Vocabulary& vocab,
                     const char* tokenizer_class) {
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
  const gguf::Metadata md(metadata, source);
  MOE_ASSIGN_OR_RETURN(std::optional<std::string> model,
                       md.String(gguf::kModelKey));
  if (!model) {
    return md.Error(gguf::kModelKey, "is missing: the file has no tokenizer");
  }

  gguf::Vocabulary vocab;
  std::vector<OutputFile> files;
  if (*model == "gpt2") {
    MOE_ASSIGN_OR_RETURN(std::optional<std::string> pre_name,
                         md.String(gguf::kPreKey));
    MOE_ASSIGN_OR_RETURN(
        const gguf::PreTokenizer* pre,
        gguf::FindPreTokenizer(md, pre_name.value_or("default")));
    MOE_ASSIGN_OR_RETURN(vocab, gguf::ReadVocabulary(md, pre->add_bos));
    MOE_ASSIGN_OR_RETURN(json tokenizer,
                         gguf::BpeTokenizerJson(md, vocab, *pre));
    MOE_ASSIGN_OR_RETURN(std::string text,
                         DumpJson(tokenizer, directory + "/tokenizer.json"));
    files.push_back({"tokenizer.json", std::move(text)});
    MOE_ASSIGN_OR_RETURN(
        text, DumpJson(TokenizerConfig(vocab, "PreTrainedTokenizerFast"),
                       directory + "/tokenizer_config.json"));
    files.push_back({"tokenizer_config.json", std::move(text)});
  } else if (*model == "llama") {
    MOE_ASSIGN_OR_RETURN(vocab,
                         gguf::ReadVocabulary(md, /*add_bos_default=*/true));
    MOE_ASSIGN_OR_RETURN(std::string proto,
                         gguf::SentencePieceModel(md, vocab));
    files.push_back({"tokenizer.model", std::move(proto)});
    MOE_ASSIGN_OR_RETURN(std::string text,
                         DumpJson(TokenizerConfig(vocab, "LlamaTokenizer"),
                                  directory + "/tokenizer_config.json"));
    files.push_back({"tokenizer_config.json", std::move(text)});
  } else {
    return md.Error(gguf::kModelKey,
                    absl::StrCat(gguf::Quoted(*model),
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

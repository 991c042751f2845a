#include "core/tokenizer/tokenizer.h"

#include <filesystem>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/tokenizer/bpe_tokenizer.h"
#include "core/tokenizer/sentencepiece_tokenizer.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"

namespace moe {
namespace {

// `add_bos_token` of tokenizer_config.json; nullopt when the file or the key
// is absent, or the value is not a boolean.
absl::StatusOr<std::optional<bool>> AddBosToken(const std::string& directory) {
  const std::string path = directory + "/tokenizer_config.json";
  if (!std::filesystem::exists(path)) return std::nullopt;
  MOE_ASSIGN_OR_RETURN(const nlohmann::json json, ReadJsonFile(path));
  const auto it = json.find("add_bos_token");
  if (it == json.end() || !it->is_boolean()) return std::nullopt;
  return it->get<bool>();
}

}  // namespace

absl::StatusOr<std::vector<int32_t>> Tokenizer::EncodePrompt(
    std::string_view text) const {
  MOE_ASSIGN_OR_RETURN(std::vector<int32_t> ids, Encode(text));
  if (bos_id_ >= 0) ids.insert(ids.begin(), bos_id_);
  return ids;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(
    const std::string& directory, const ModelConfig& config) {
  MOE_ASSIGN_OR_RETURN(const std::optional<bool> add_bos,
                       AddBosToken(directory));
  const std::string model_path = directory + "/tokenizer.model";
  const std::string json_path = directory + "/tokenizer.json";
  std::string path;
  std::unique_ptr<Tokenizer> tokenizer;
  // A tokenizer.json beside a tokenizer.model is the Hugging Face conversion
  // of that SentencePiece model (byte fallback pieces), which the BPE loader
  // does not take: the model file goes first.
  if (std::filesystem::exists(model_path)) {
    path = model_path;
    MOE_ASSIGN_OR_RETURN(
        tokenizer,
        LoadSentencePieceTokenizer(
            path, add_bos.value_or(true) ? config.bos_token_id : -1));
  } else if (std::filesystem::exists(json_path)) {
    path = json_path;
    std::optional<int> bos_id;  // as the post-processor's template says
    if (add_bos.has_value()) bos_id = *add_bos ? config.bos_token_id : -1;
    MOE_ASSIGN_OR_RETURN(tokenizer, LoadBpeTokenizer(path, bos_id));
  } else {
    return absl::NotFoundError(
        absl::StrCat(directory, ": no tokenizer.model or tokenizer.json"));
  }
  if (tokenizer->vocab_size() > config.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, " has ", tokenizer->vocab_size(),
        " tokens but the model's vocab_size is ", config.vocab_size));
  }
  return tokenizer;
}

}  // namespace moe

#include "core/tokenizer/sentencepiece_tokenizer.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/tokenizer/sentencepiece_shim.h"
#include "core/util/status_macros.h"
#include "core/util/subprocess.h"

namespace moe {
namespace {

constexpr char kShimName[] = "libmoe_sentencepiece_shim.so";

// RTLD_DEEPBIND: the module's own protobuf must win over the process's.
// AddressSanitizer refuses RTLD_DEEPBIND, so sanitizer builds go without it;
// they can load the module only into processes that link no other protobuf.
#if defined(__SANITIZE_ADDRESS__)
constexpr int kDlopenFlags = RTLD_NOW | RTLD_LOCAL;
#else
constexpr int kDlopenFlags = RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND;
#endif

// The shim's entry points, resolved once per process.
struct ShimApi {
  decltype(&moe_spm_load) load;
  decltype(&moe_spm_free) free;
  decltype(&moe_spm_release) release;
  decltype(&moe_spm_vocab_size) vocab_size;
  decltype(&moe_spm_encode) encode;
  decltype(&moe_spm_decode) decode;
};

// Where the shim may be: $MOE_SENTENCEPIECE_SHIM, beside the executable, or
// the build tree it was compiled in.
std::vector<std::string> ShimCandidates() {
  std::vector<std::string> candidates;
  if (const char* path = std::getenv("MOE_SENTENCEPIECE_SHIM")) {
    candidates.push_back(path);
  }
  std::error_code error;
  const std::filesystem::path exe =
      std::filesystem::read_symlink("/proc/self/exe", error);
  if (!error) candidates.push_back((exe.parent_path() / kShimName).string());
  candidates.push_back(std::string(MOE_SHIM_DIR) + "/" + kShimName);
  return candidates;
}

absl::StatusOr<const ShimApi*> Shim() {
  static absl::StatusOr<ShimApi> api = []() -> absl::StatusOr<ShimApi> {
    std::vector<std::string> tried;
    void* handle = nullptr;
    for (const std::string& path : ShimCandidates()) {
      handle = dlopen(path.c_str(), kDlopenFlags);
      if (handle != nullptr) break;
      tried.push_back(absl::StrCat(path, " (", dlerror(), ")"));
    }
    if (handle == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot load the SentencePiece module; tried: ",
                       absl::StrJoin(tried, "; ")));
    }
    ShimApi shim;
    bool complete = true;
    auto resolve = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(
          dlsym(handle, name));
      complete = complete && fn != nullptr;
    };
    resolve(shim.load, "moe_spm_load");
    resolve(shim.free, "moe_spm_free");
    resolve(shim.release, "moe_spm_release");
    resolve(shim.vocab_size, "moe_spm_vocab_size");
    resolve(shim.encode, "moe_spm_encode");
    resolve(shim.decode, "moe_spm_decode");
    if (!complete) {
      return absl::FailedPreconditionError(
          "the SentencePiece module lacks an entry point");
    }
    return shim;
  }();
  if (!api.ok()) return api.status();
  return &*api;
}

class SentencePieceTokenizer : public Tokenizer {
 public:
  SentencePieceTokenizer(const ShimApi* shim, void* processor, int bos_id)
      : shim_(shim),
        processor_(processor),
        vocab_size_(shim->vocab_size(processor)) {
    bos_id_ = bos_id;
  }
  ~SentencePieceTokenizer() override { shim_->free(processor_); }

  absl::StatusOr<std::vector<int32_t>> Encode(
      std::string_view text) const override {
    int* ids = nullptr;
    size_t count = 0;
    char error[512];
    if (shim_->encode(processor_, text.data(), text.size(), &ids, &count, error,
                      sizeof(error)) != 0) {
      return absl::InvalidArgumentError(absl::StrCat("tokenizer: ", error));
    }
    std::vector<int32_t> result(ids, ids + count);
    shim_->release(ids);
    return result;
  }

  absl::StatusOr<std::string> Decode(
      std::span<const int32_t> ids) const override {
    std::vector<int> pieces;
    pieces.reserve(ids.size());
    for (int32_t id : ids) {
      if (id < 0 || id >= vocab_size_) {
        return absl::InvalidArgumentError(absl::StrCat(
            "token id ", id, " is outside the tokenizer's vocabulary [0, ",
            vocab_size_, ")"));
      }
      pieces.push_back(id);
    }
    char* text = nullptr;
    size_t length = 0;
    char error[512];
    if (shim_->decode(processor_, pieces.data(), pieces.size(), &text, &length,
                      error, sizeof(error)) != 0) {
      return absl::InvalidArgumentError(absl::StrCat("tokenizer: ", error));
    }
    std::string result(text, length);
    shim_->release(text);
    return result;
  }

  int vocab_size() const override { return vocab_size_; }

 private:
  const ShimApi* shim_;
  void* processor_;
  int vocab_size_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadSentencePieceTokenizer(
    const std::string& path, int bos_id) {
  MOE_ASSIGN_OR_RETURN(const ShimApi* shim, Shim());
  char error[512];
  void* processor = shim->load(path.c_str(), error, sizeof(error));
  if (processor == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", error));
  }
  return std::make_unique<SentencePieceTokenizer>(shim, processor, bos_id);
}

absl::Status TrainSentencePiece(const std::vector<std::string>& input_files,
                                int vocab_size,
                                const std::string& model_prefix) {
  // spm_train runs in its own process: the trainer logs through std::cerr,
  // which crashes inside a module loaded with RTLD_DEEPBIND.
  std::vector<std::string> args = {
      "spm_train", absl::StrCat("--input=", absl::StrJoin(input_files, ",")),
      absl::StrCat("--model_prefix=", model_prefix),
      absl::StrCat("--vocab_size=", vocab_size), "--model_type=bpe",
      "--byte_fallback=true", "--hard_vocab_limit=false",
      "--character_coverage=1.0", "--split_digits=true",
      // As Llama's tokenizer: text kept verbatim (no NFKC, whitespace runs,
      // tabs and newlines preserved), a leading space on the first word.
      "--normalization_rule_name=identity", "--remove_extra_whitespaces=false",
      "--allow_whitespace_only_pieces=true", "--add_dummy_prefix=true",
      "--unk_id=0", "--bos_id=1", "--eos_id=2", "--pad_id=-1",
      "--num_threads=2"};
  const std::string log_path = model_prefix + ".train.log";
  MOE_RETURN_IF_ERROR(RunProgram(args, log_path));
  std::filesystem::remove(log_path);
  return absl::OkStatus();
}

}  // namespace moe

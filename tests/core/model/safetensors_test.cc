// Safetensors files and checkpoints: writing, loading, and the errors for
// corrupt files, with the file and tensor named; then ModelWeights::Load on a
// small random model and on damaged copies of it.
#include "core/model/safetensors.h"

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/model/checkpoint.h"
#include "core/model/checkpoint_writer.h"
#include "core/model/dtype.h"
#include "core/model/float_formats.h"
#include "core/model/model_config.h"
#include "core/model/model_weights.h"
#include "core/model/safetensors_writer.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/expect_has_substr.h"
#include "tools/moe_make_model/random_model.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

// A fresh directory under the test temp dir, unique per process and call.
std::string MakeTempDir(const std::string& tag) {
  static std::atomic<int> counter{0};
  const fs::path dir =
      fs::path(::testing::TempDir()) /
      absl::StrCat("safetensors_test_", getpid(), "_", tag, "_", counter++);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

// A safetensors file by hand: 8-byte little-endian header length, header,
// data. `header_length` overrides the real length when not -1.
std::string RawFile(const std::string& header, const std::string& data,
                    int64_t header_length = -1) {
  const uint64_t length =
      header_length < 0 ? header.size() : static_cast<uint64_t>(header_length);
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i)
    bytes[i] = static_cast<char>((length >> (8 * i)) & 0xFF);
  return bytes + header + data;
}

std::vector<uint8_t> PatternBytes(size_t count, uint8_t seed) {
  std::vector<uint8_t> bytes(count);
  for (size_t i = 0; i < count; ++i)
    bytes[i] = static_cast<uint8_t>(seed + 31 * i);
  return bytes;
}

struct TensorSpec {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

std::vector<TensorSpec> SampleTensors() {
  std::vector<TensorSpec> tensors;
  auto add = [&](std::string name, DType dtype, std::vector<int64_t> shape) {
    int64_t elements = 1;
    for (int64_t dim : shape) elements *= dim;
    const size_t bytes = static_cast<size_t>(elements) * DTypeSize(dtype);
    tensors.push_back(
        {std::move(name), dtype, std::move(shape),
         PatternBytes(bytes, static_cast<uint8_t>(tensors.size() * 17 + 3))});
  };
  add("a.f32", DType::kF32, {3, 5});
  add("b.f16", DType::kF16, {7});
  add("c.bf16", DType::kBF16, {2, 3, 4});
  add("d.fp8", DType::kF8E4M3,
      {9, 3});  // odd byte count: later offsets unaligned
  add("e.scalar", DType::kF32, {});
  add("f.empty", DType::kBF16, {0, 4});
  return tensors;
}

void ExpectTensor(const TensorView* view, const TensorSpec& spec) {
  ASSERT_NE(view, nullptr) << spec.name;
  EXPECT_EQ(view->name, spec.name);
  EXPECT_EQ(view->dtype, spec.dtype) << spec.name;
  EXPECT_EQ(view->shape, spec.shape) << spec.name;
  EXPECT_EQ(view->num_bytes, spec.bytes.size()) << spec.name;
  EXPECT_EQ(static_cast<size_t>(view->num_elements()) * DTypeSize(spec.dtype),
            spec.bytes.size());
  if (!spec.bytes.empty()) {
    EXPECT_EQ(std::memcmp(view->data, spec.bytes.data(), spec.bytes.size()), 0)
        << spec.name;
  }
}

// Writes `tensors` as a checkpoint of `shards` files into `dir`.
absl::Status WriteCheckpoint(const std::vector<TensorSpec>& tensors, int shards,
                             const std::string& dir) {
  CheckpointWriter writer(shards);
  for (const TensorSpec& t : tensors) {
    writer.Add(t.name, t.dtype, t.shape, t.bytes);
  }
  return writer.Write(dir);
}

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir(
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  // Opens `path`, which must fail; returns the error.
  absl::Status OpenError(const std::string& path) {
    absl::StatusOr<std::unique_ptr<SafetensorsFile>> file =
        SafetensorsFile::Open(path);
    EXPECT_FALSE(file.ok()) << path << " opened";
    return file.ok() ? absl::OkStatus() : file.status();
  }

  absl::Status CheckpointError() {
    absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint =
        Checkpoint::Open(dir_);
    EXPECT_FALSE(checkpoint.ok()) << dir_ << " opened";
    return checkpoint.ok() ? absl::OkStatus() : checkpoint.status();
  }

  std::string dir_;
};

// Random damage to the length and header of a valid file: every outcome is
// either a file whose tensors all lie inside it or an error naming the file,
// never a crash (run under AddressSanitizer, an overrun would also show).
TEST_F(SafetensorsTest, RandomDamageGivesAValidFileOrAClearError) {
  SafetensorsWriter writer;
  for (TensorSpec& t : SampleTensors()) {
    writer.Add(t.name, t.dtype, t.shape, t.bytes);
  }
  const std::string path = dir_ + "/model.safetensors";
  ASSERT_TRUE(writer.Write(path).ok());
  std::ifstream in(path, std::ios::binary);
  const std::string good((std::istreambuf_iterator<char>(in)),
                         std::istreambuf_iterator<char>());
  uint64_t header_size = 0;
  std::memcpy(&header_size, good.data(), 8);
  const size_t damage_end = 8 + header_size;
  const std::string json_chars = "{}[]\",:0123456789-eE ";
  std::mt19937 generator(5);
  int errors = 0;
  for (int round = 0; round < 3000; ++round) {
    std::string bytes = good;
    std::uniform_int_distribution<size_t> position(0, damage_end - 1);
    switch (round % 3) {
      case 0:
        for (int flips = 0; flips < 3; ++flips) {
          bytes[position(generator)] ^=
              static_cast<char>(1 << (generator() % 8));
        }
        break;
      case 1:
        bytes.resize(
            std::uniform_int_distribution<size_t>(0, good.size())(generator));
        break;
      case 2:
        bytes[8 + position(generator) % header_size] =
            json_chars[generator() % json_chars.size()];
        break;
    }
    WriteBytes(path, bytes);
    auto file = SafetensorsFile::Open(path);
    if (!file.ok()) {
      ++errors;
      EXPECT_HAS_SUBSTR(file.status().message(), path);
      continue;
    }
    for (const auto& [name, view] : (*file)->tensors()) {
      ASSERT_EQ(view.num_bytes, static_cast<size_t>(view.num_elements()) *
                                    DTypeSize(view.dtype))
          << name;
      // Touch every byte of the tensor: an overrun faults or is reported.
      volatile uint8_t sink = 0;
      for (size_t i = 0; i < view.num_bytes; ++i) sink = sink ^ view.data[i];
    }
  }
  EXPECT_GT(errors, 1000);
}

TEST_F(SafetensorsTest, SingleFileRoundTripsEveryDType) {
  const std::vector<TensorSpec> tensors = SampleTensors();
  SafetensorsWriter writer;
  for (const TensorSpec& t : tensors)
    writer.Add(t.name, t.dtype, t.shape, t.bytes);
  EXPECT_EQ(writer.num_tensors(), tensors.size());
  const std::string path = Path("one.safetensors");
  ASSERT_TRUE(writer.Write(path).ok());

  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file =
      SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->path(), path);
  EXPECT_EQ((*file)->tensors().size(), tensors.size());  // no __metadata__
  for (const TensorSpec& t : tensors) {
    const TensorView* view = (*file)->Find(t.name);
    ExpectTensor(view, t);
    if (view != nullptr) {
      EXPECT_EQ(view->file, path);
    }
  }
  EXPECT_EQ((*file)->Find("nope"), nullptr);
  EXPECT_EQ((*file)->Find("__metadata__"), nullptr);

  // The header is padded so that the data starts at a multiple of 8.
  std::ifstream in(path, std::ios::binary);
  uint64_t header_length = 0;
  in.read(reinterpret_cast<char*>(&header_length), 8);
  EXPECT_EQ(header_length % 8, 0u);
  EXPECT_EQ(fs::file_size(path), 8 + header_length + writer.num_bytes());
}

TEST_F(SafetensorsTest, SingleFileCheckpoint) {
  const std::vector<TensorSpec> tensors = SampleTensors();
  ASSERT_TRUE(WriteCheckpoint(tensors, 1, dir_).ok());
  EXPECT_TRUE(fs::exists(Path("model.safetensors")));
  EXPECT_FALSE(fs::exists(Path("model.safetensors.index.json")));

  absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint =
      Checkpoint::Open(dir_);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_EQ((*checkpoint)->tensors().size(), tensors.size());
  for (const TensorSpec& t : tensors)
    ExpectTensor((*checkpoint)->Find(t.name), t);
  EXPECT_EQ((*checkpoint)->Find("missing"), nullptr);
  EXPECT_HAS_SUBSTR((*checkpoint)->Describe(), "model.safetensors");
}

TEST_F(SafetensorsTest, ShardedCheckpointLoadsEveryTensor) {
  std::vector<TensorSpec> tensors;
  for (int i = 0; i < 12; ++i) {
    const DType dtype = i % 3 == 0   ? DType::kBF16
                        : i % 3 == 1 ? DType::kF8E4M3
                                     : DType::kF32;
    const std::vector<int64_t> shape = {i + 1, 8};
    tensors.push_back({absl::StrCat("model.layers.", i, ".weight"), dtype,
                       shape,
                       PatternBytes((i + 1) * 8 * DTypeSize(dtype),
                                    static_cast<uint8_t>(i))});
  }
  ASSERT_TRUE(WriteCheckpoint(tensors, 3, dir_).ok());
  EXPECT_FALSE(fs::exists(Path("model.safetensors")));
  ASSERT_TRUE(fs::exists(Path("model.safetensors.index.json")));

  absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint =
      Checkpoint::Open(dir_);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_EQ((*checkpoint)->tensors().size(), tensors.size());
  std::ifstream in(Path("model.safetensors.index.json"));
  const nlohmann::json index = nlohmann::json::parse(in);
  std::set<std::string> files;
  for (const TensorSpec& t : tensors) {
    const TensorView* view = (*checkpoint)->Find(t.name);
    ExpectTensor(view, t);
    ASSERT_NE(view, nullptr);
    files.insert(view->file);
    // The index names the shard that holds the tensor.
    ASSERT_TRUE(index["weight_map"].contains(t.name)) << t.name;
    EXPECT_EQ(view->file, Path(index["weight_map"][t.name].get<std::string>()));
  }
  EXPECT_EQ(files.size(), 3u);
  for (const std::string& file : files) EXPECT_TRUE(fs::exists(file)) << file;
}

TEST_F(SafetensorsTest, RewritingACheckpointReplacesTheOtherLayout) {
  const std::vector<TensorSpec> tensors = SampleTensors();
  for (int shards : {3, 1, 2}) {
    ASSERT_TRUE(WriteCheckpoint(tensors, shards, dir_).ok());
    EXPECT_EQ(fs::exists(Path("model.safetensors")), shards == 1);
    EXPECT_EQ(fs::exists(Path("model.safetensors.index.json")), shards > 1);
    auto checkpoint = Checkpoint::Open(dir_);
    ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
    std::set<std::string> files;
    for (const auto& [name, view] : (*checkpoint)->tensors())
      files.insert(view->file);
    EXPECT_EQ(files.size(), static_cast<size_t>(shards));
  }
}

TEST_F(SafetensorsTest, FileShorterThanEightBytes) {
  const std::string path = Path("short.safetensors");
  WriteBytes(path, std::string("\x05\x00\x00", 3));
  const absl::Status status = OpenError(path);
  EXPECT_HAS_SUBSTR(status.message(), path);
}

TEST_F(SafetensorsTest, EmptyFile) {
  const std::string path = Path("empty.safetensors");
  WriteBytes(path, "");
  EXPECT_HAS_SUBSTR(OpenError(path).message(), path);
}

TEST_F(SafetensorsTest, MissingFile) {
  const std::string path = Path("absent.safetensors");
  EXPECT_HAS_SUBSTR(OpenError(path).message(), path);
}

TEST_F(SafetensorsTest, HeaderLongerThanFile) {
  const std::string path = Path("long_header.safetensors");
  WriteBytes(path, RawFile("{}      ", "", /*header_length=*/1000));
  const absl::Status status = OpenError(path);
  EXPECT_HAS_SUBSTR(status.message(), path);
  // An absurd length (a text file, say) must fail the same way, not allocate.
  const std::string huge = Path("huge_header.safetensors");
  WriteBytes(huge, RawFile("{}", "", int64_t{1} << 62));
  EXPECT_HAS_SUBSTR(OpenError(huge).message(), huge);
}

TEST_F(SafetensorsTest, HeaderNotJson) {
  const std::string path = Path("not_json.safetensors");
  WriteBytes(path, RawFile("this is not json", ""));
  EXPECT_HAS_SUBSTR(OpenError(path).message(), path);
  const std::string array = Path("array.safetensors");
  WriteBytes(array, RawFile("[1, 2, 3]", ""));
  EXPECT_HAS_SUBSTR(OpenError(array).message(), array);
}

TEST_F(SafetensorsTest, UnknownDType) {
  const std::string path = Path("f64.safetensors");
  WriteBytes(
      path,
      RawFile(
          R"({"odd.tensor":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}})",
          std::string(16, '\0')));
  const absl::Status status = OpenError(path);
  EXPECT_HAS_SUBSTR(status.message(), path);
  EXPECT_HAS_SUBSTR(status.message(), "odd.tensor");
  EXPECT_HAS_SUBSTR(status.message(), "F64");
}

TEST_F(SafetensorsTest, DataOffsetsDoNotMatchShape) {
  const std::string path = Path("mismatch.safetensors");
  // [2, 3] F32 needs 24 bytes; the offsets give 20.
  WriteBytes(
      path,
      RawFile(
          R"({"bad.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})",
          std::string(24, '\0')));
  const absl::Status status = OpenError(path);
  EXPECT_HAS_SUBSTR(status.message(), path);
  EXPECT_HAS_SUBSTR(status.message(), "bad.weight");

  const std::string reversed = Path("reversed.safetensors");
  WriteBytes(
      reversed,
      RawFile(
          R"({"bad.weight":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})",
          std::string(8, '\0')));
  EXPECT_HAS_SUBSTR(OpenError(reversed).message(), "bad.weight");

  const std::string negative = Path("negative.safetensors");
  WriteBytes(
      negative,
      RawFile(
          R"({"bad.weight":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})",
          std::string(4, '\0')));
  EXPECT_HAS_SUBSTR(OpenError(negative).message(), "bad.weight");
}

TEST_F(SafetensorsTest, TruncatedFileNamesTheTensor) {
  SafetensorsWriter writer;
  writer.Add("first.weight", DType::kF32, {4, 4}, PatternBytes(64, 1));
  writer.Add("last.weight", DType::kBF16, {16, 8}, PatternBytes(256, 2));
  const std::string path = Path("truncated.safetensors");
  ASSERT_TRUE(writer.Write(path).ok());
  ASSERT_TRUE(SafetensorsFile::Open(path).ok());
  fs::resize_file(path, fs::file_size(path) - 3);
  const absl::Status status = OpenError(path);
  EXPECT_HAS_SUBSTR(status.message(), path);
  EXPECT_HAS_SUBSTR(status.message(), "last.weight");
}

// Writes a sharded checkpoint of a few tensors and returns its index.
nlohmann::json WriteShards(const std::string& dir) {
  CheckpointWriter writer(2);
  writer.Add("x.weight", DType::kF32, {4, 4}, PatternBytes(64, 1));
  writer.Add("y.weight", DType::kF32, {4, 4}, PatternBytes(64, 2));
  writer.Add("z.weight", DType::kF32, {4, 4}, PatternBytes(64, 3));
  EXPECT_TRUE(writer.Write(dir).ok());
  std::ifstream in(dir + "/model.safetensors.index.json");
  return nlohmann::json::parse(in);
}

void WriteIndex(const std::string& dir, const nlohmann::json& index) {
  WriteBytes(dir + "/model.safetensors.index.json", index.dump(2));
}

TEST_F(SafetensorsTest, IndexListsATensorTheShardDoesNotHave) {
  nlohmann::json index = WriteShards(dir_);
  ASSERT_TRUE(Checkpoint::Open(dir_).ok());
  const std::string shard = index["weight_map"]["x.weight"].get<std::string>();
  index["weight_map"]["ghost.weight"] = shard;
  WriteIndex(dir_, index);
  const absl::Status status = CheckpointError();
  EXPECT_HAS_SUBSTR(status.message(), "ghost.weight");
  EXPECT_HAS_SUBSTR(status.message(), Path(shard));
}

TEST_F(SafetensorsTest, IndexPutsATensorInTheWrongShard) {
  nlohmann::json index = WriteShards(dir_);
  const std::string x_shard =
      index["weight_map"]["x.weight"].get<std::string>();
  const std::string z_shard =
      index["weight_map"]["z.weight"].get<std::string>();
  ASSERT_NE(x_shard, z_shard);
  index["weight_map"]["z.weight"] = x_shard;
  WriteIndex(dir_, index);
  const absl::Status status = CheckpointError();
  EXPECT_HAS_SUBSTR(status.message(), "z.weight");
  EXPECT_HAS_SUBSTR(status.message(), Path(x_shard));
}

TEST_F(SafetensorsTest, IndexNamesAMissingShard) {
  nlohmann::json index = WriteShards(dir_);
  index["weight_map"]["ghost.weight"] = "model-00009-of-00009.safetensors";
  WriteIndex(dir_, index);
  const absl::Status status = CheckpointError();
  EXPECT_HAS_SUBSTR(status.message(), Path("model-00009-of-00009.safetensors"));
}

TEST_F(SafetensorsTest, CorruptShardIsNamed) {
  nlohmann::json index = WriteShards(dir_);
  const std::string shard =
      Path(index["weight_map"]["z.weight"].get<std::string>());
  fs::resize_file(shard, fs::file_size(shard) - 1);
  const absl::Status status = CheckpointError();
  EXPECT_HAS_SUBSTR(status.message(), shard);
  EXPECT_HAS_SUBSTR(status.message(), "z.weight");
}

TEST_F(SafetensorsTest, IndexIsNotJson) {
  WriteShards(dir_);
  WriteBytes(Path("model.safetensors.index.json"), "{ not json");
  EXPECT_HAS_SUBSTR(CheckpointError().message(),
                    "model.safetensors.index.json");
}

TEST_F(SafetensorsTest, NoSafetensorsAtAll) {
  const absl::Status status = CheckpointError();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_HAS_SUBSTR(status.message(), dir_);
  EXPECT_HAS_SUBSTR(status.message(), "model.safetensors");
}

// ------------------------------------------------------------- ModelWeights

// Sentences of lower-case words: 28 distinct characters.
std::string WriteCorpus(const std::string& path) {
  const char* const words[] = {
      "the",   "expert", "router",  "token",  "model", "weight", "layer",
      "gate",  "serve",  "mixture", "of",     "and",   "a",      "sparse",
      "dense", "shard",  "file",    "tensor", "scale", "norm"};
  std::string text;
  uint32_t state = 12345;
  for (int line = 0; line < 400; ++line) {
    for (int w = 0; w < 12; ++w) {
      state = state * 1664525u + 1013904223u;
      text += words[(state >> 16) % 20];
      text += w == 11 ? ".\n" : " ";
    }
  }
  WriteBytes(path, text);
  return path;
}

ModelConfig SmallModelConfig() {
  ModelConfig c;
  c.architecture = Architecture::kMixtral;
  c.hidden_size = 32;
  c.num_layers = 1;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 8;
  c.num_experts = 4;
  c.top_k = 2;
  c.intermediate_size = 16;
  c.vocab_size = 300;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  return c;
}

// One random BF16 model and FP8 copies (per-tensor and per-channel scales)
// for the whole suite; the FP8 ones reuse the trained tokenizer.
class ModelWeightsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new std::string(MakeTempDir("models"));
    RandomModelOptions options;
    options.config = SmallModelConfig();
    options.seed = 5;
    // With byte fallback a SentencePiece vocabulary needs 259 pieces plus
    // one per distinct character of the corpus: the default corpus (the
    // license texts, 84 characters) does not fit 300, so train on text of
    // lower-case words.
    options.tokenizer_corpus = {WriteCorpus(*root_ + "/corpus.txt")};
    setup_status_ = new absl::Status(WriteRandomModel(options, Bf16Dir()));
    if (!setup_status_->ok()) return;
    options.tokenizer = Bf16Dir() + "/tokenizer.model";
    options.config.weight_format = WeightFormat::kFp8;
    *setup_status_ = WriteRandomModel(options, Fp8Dir());
    if (!setup_status_->ok()) return;
    options.fp8_scales = ScaleGranularity::kPerChannel;
    *setup_status_ = WriteRandomModel(options, Fp8ChannelDir());
  }
  static void TearDownTestSuite() {
    fs::remove_all(*root_);
    delete root_;
    delete setup_status_;
  }

  void SetUp() override { ASSERT_TRUE(setup_status_->ok()) << *setup_status_; }
  void TearDown() override {
    for (const std::string& dir : damaged_) fs::remove_all(dir);
  }

  static std::string Bf16Dir() { return *root_ + "/bf16"; }
  static std::string Fp8Dir() { return *root_ + "/fp8"; }
  static std::string Fp8ChannelDir() { return *root_ + "/fp8_channel"; }

  // A copy of the checkpoint in `source` (config.json and tensors) without
  // the tensors in `drop` and with `replace` added (replacing same-named
  // ones).
  std::string Damaged(const std::string& source,
                      const std::set<std::string>& drop,
                      const std::vector<TensorSpec>& replace = {}) {
    const std::string dir = MakeTempDir("damaged");
    damaged_.push_back(dir);
    fs::copy_file(source + "/config.json", dir + "/config.json");
    absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint =
        Checkpoint::Open(source);
    EXPECT_TRUE(checkpoint.ok()) << checkpoint.status();
    if (!checkpoint.ok()) return dir;
    std::set<std::string> skip = drop;
    for (const TensorSpec& t : replace) skip.insert(t.name);
    CheckpointWriter writer;
    for (const auto& [name, view] : (*checkpoint)->tensors()) {
      if (skip.count(name)) continue;
      writer.Add(
          name, view->dtype, view->shape,
          std::vector<uint8_t>(view->data, view->data + view->num_bytes));
    }
    for (const TensorSpec& t : replace)
      writer.Add(t.name, t.dtype, t.shape, t.bytes);
    EXPECT_TRUE(writer.Write(dir).ok());
    return dir;
  }

  absl::Status LoadError(const std::string& dir,
                         const WeightSelection& selection = WeightSelection()) {
    absl::StatusOr<std::unique_ptr<ModelWeights>> weights =
        ModelWeights::Load(dir, selection);
    EXPECT_FALSE(weights.ok()) << dir << " loaded";
    return weights.ok() ? absl::OkStatus() : weights.status();
  }

  static std::string* root_;
  static absl::Status* setup_status_;
  std::vector<std::string> damaged_;
};

std::string* ModelWeightsTest::root_ = nullptr;
absl::Status* ModelWeightsTest::setup_status_ = nullptr;

void ExpectMatrix(const LinearWeight& w, DType dtype, int64_t rows,
                  int64_t cols) {
  EXPECT_EQ(w.dtype, dtype);
  EXPECT_EQ(w.rows, rows);
  EXPECT_EQ(w.cols, cols);
  EXPECT_NE(w.data, nullptr);
}

TEST_F(ModelWeightsTest, LoadsTheRandomModel) {
  absl::StatusOr<std::unique_ptr<ModelWeights>> weights =
      ModelWeights::Load(Bf16Dir());
  ASSERT_TRUE(weights.ok()) << weights.status();
  EXPECT_TRUE(fs::exists(Bf16Dir() + "/tokenizer.model"));
  const ModelWeights& w = **weights;
  EXPECT_EQ(w.config().hidden_size, 32);
  EXPECT_EQ(w.config().num_experts, 4);
  EXPECT_EQ(w.config().vocab_size, 300);
  ExpectMatrix(w.embed_tokens(), DType::kBF16, 300, 32);
  ExpectMatrix(w.lm_head(), DType::kBF16, 300, 32);
  EXPECT_EQ(w.embed_tokens().data,
            w.checkpoint().Find("model.embed_tokens.weight")->data);
  ASSERT_EQ(w.final_norm().size(), 32u);
  ASSERT_EQ(w.layers().size(), 1u);
  const LayerWeights& layer = w.layers()[0];
  EXPECT_EQ(layer.input_norm.size(), 32u);
  EXPECT_EQ(layer.post_attention_norm.size(), 32u);
  ExpectMatrix(layer.q_proj, DType::kBF16, 32, 32);
  ExpectMatrix(layer.k_proj, DType::kBF16, 16, 32);
  ExpectMatrix(layer.v_proj, DType::kBF16, 16, 32);
  ExpectMatrix(layer.o_proj, DType::kBF16, 32, 32);
  ExpectMatrix(layer.gate, DType::kBF16, 4, 32);
  ASSERT_EQ(layer.experts.size(), 4u);
  for (const ExpertWeights& expert : layer.experts) {
    EXPECT_TRUE(expert.loaded);
    ExpectMatrix(expert.w1, DType::kBF16, 16, 32);
    ExpectMatrix(expert.w3, DType::kBF16, 16, 32);
    ExpectMatrix(expert.w2, DType::kBF16, 32, 16);
    EXPECT_TRUE(expert.w1.scales.empty());
  }
  // The norm is decoded from the stored BF16 values.
  const TensorView* norm = w.checkpoint().Find("model.norm.weight");
  ASSERT_NE(norm, nullptr);
  for (int k = 0; k < 32; ++k) {
    uint16_t bits;
    std::memcpy(&bits, norm->data + 2 * k, 2);
    EXPECT_EQ(w.final_norm()[k], Bf16ToFloat(bits));
  }
}

TEST_F(ModelWeightsTest, LoadsFp8ModelsWithScales) {
  absl::StatusOr<std::unique_ptr<ModelWeights>> weights =
      ModelWeights::Load(Fp8Dir());
  ASSERT_TRUE(weights.ok()) << weights.status();
  EXPECT_EQ((*weights)->config().weight_format, WeightFormat::kFp8);
  const LayerWeights& layer = (*weights)->layers()[0];
  ExpectMatrix(layer.q_proj, DType::kF8E4M3, 32, 32);
  EXPECT_EQ(layer.q_proj.scales.size(), 1u);
  ExpectMatrix(layer.experts[3].w2, DType::kF8E4M3, 32, 16);
  EXPECT_EQ(layer.experts[3].w2.scales.size(), 1u);
  EXPECT_GT(layer.experts[3].w2.scales[0], 0.0f);
  ExpectMatrix(layer.gate, DType::kBF16, 4, 32);  // the gate stays BF16
  EXPECT_TRUE(layer.gate.scales.empty());
  ExpectMatrix((*weights)->embed_tokens(), DType::kBF16, 300, 32);

  weights = ModelWeights::Load(Fp8ChannelDir());
  ASSERT_TRUE(weights.ok()) << weights.status();
  const LayerWeights& channel = (*weights)->layers()[0];
  EXPECT_EQ(channel.experts[0].w1.scales.size(), 16u);
  EXPECT_EQ(channel.experts[0].w2.scales.size(), 32u);
  EXPECT_EQ(channel.k_proj.scales.size(), 16u);
}

TEST_F(ModelWeightsTest, ExpertFilterLoadsOnlySelectedExperts) {
  WeightSelection selection;
  selection.dense_parts = false;
  selection.expert_filter = [](int /*layer*/, int expert) {
    return expert % 2 == 1;
  };
  absl::StatusOr<std::unique_ptr<ModelWeights>> weights =
      ModelWeights::Load(Bf16Dir(), selection);
  ASSERT_TRUE(weights.ok()) << weights.status();
  const LayerWeights& layer = (*weights)->layers()[0];
  ASSERT_EQ(layer.experts.size(), 4u);
  for (int e = 0; e < 4; ++e)
    EXPECT_EQ(layer.experts[e].loaded, e % 2 == 1) << e;
  EXPECT_EQ(layer.q_proj.data, nullptr);
  EXPECT_TRUE((*weights)->final_norm().empty());
}

constexpr char kExpert1W2[] =
    "model.layers.0.block_sparse_moe.experts.1.w2.weight";

TEST_F(ModelWeightsTest, MissingExpertTensorIsNamed) {
  const std::string dir = Damaged(Bf16Dir(), {kExpert1W2});
  const absl::Status status = LoadError(dir);
  EXPECT_HAS_SUBSTR(status.message(), kExpert1W2);

  // A worker that does not hold expert 1 does not need the tensor.
  WeightSelection selection;
  selection.expert_filter = [](int /*layer*/, int expert) {
    return expert != 1;
  };
  absl::StatusOr<std::unique_ptr<ModelWeights>> weights =
      ModelWeights::Load(dir, selection);
  EXPECT_TRUE(weights.ok()) << weights.status();
}

TEST_F(ModelWeightsTest, MissingDenseTensorIsNamed) {
  const std::string name = "model.layers.0.self_attn.v_proj.weight";
  const absl::Status status = LoadError(Damaged(Bf16Dir(), {name}));
  EXPECT_HAS_SUBSTR(status.message(), name);
}

TEST_F(ModelWeightsTest, WrongShapeNamesTensorAndBothShapes) {
  const std::string name =
      "model.layers.0.block_sparse_moe.experts.2.w1.weight";
  // Expected [16, 32]; stored [24, 32].
  const std::string dir =
      Damaged(Bf16Dir(), {},
              {{name, DType::kBF16, {24, 32}, PatternBytes(24 * 32 * 2, 9)}});
  const absl::Status status = LoadError(dir);
  EXPECT_HAS_SUBSTR(status.message(), name);
  EXPECT_HAS_SUBSTR(status.message(), "24, 32");
  EXPECT_HAS_SUBSTR(status.message(), "16, 32");
}

TEST_F(ModelWeightsTest, TransposedGateIsRejected) {
  const std::string name = "model.layers.0.block_sparse_moe.gate.weight";
  const std::string dir =
      Damaged(Bf16Dir(), {},
              {{name, DType::kBF16, {32, 4}, PatternBytes(32 * 4 * 2, 4)}});
  const absl::Status status = LoadError(dir);
  EXPECT_HAS_SUBSTR(status.message(), name);
}

TEST_F(ModelWeightsTest, Fp8WeightWithoutScaleNamesTheScale) {
  const std::string scale =
      "model.layers.0.block_sparse_moe.experts.2.w3.weight_scale";
  ASSERT_TRUE(Checkpoint::Open(Fp8Dir()).value()->Find(scale) != nullptr);
  const absl::Status status = LoadError(Damaged(Fp8Dir(), {scale}));
  EXPECT_HAS_SUBSTR(status.message(), scale);
}

TEST_F(ModelWeightsTest, Fp8WeightInABf16CheckpointNeedsAScaleToo) {
  // An F8 tensor is dequantized by its scale whatever config.json says.
  const std::string name = "model.layers.0.self_attn.o_proj.weight";
  const std::string dir =
      Damaged(Bf16Dir(), {},
              {{name, DType::kF8E4M3, {32, 32}, PatternBytes(32 * 32, 1)}});
  const absl::Status status = LoadError(dir);
  EXPECT_HAS_SUBSTR(status.message(), name + "_scale");
}

TEST_F(ModelWeightsTest, BadScalesAreRejected) {
  const std::string scale = "model.layers.0.self_attn.q_proj.weight_scale";
  // A scale of the wrong shape: 5 values for 32 rows.
  std::string dir = Damaged(
      Fp8Dir(), {}, {{scale, DType::kF32, {5}, std::vector<uint8_t>(20, 0)}});
  EXPECT_HAS_SUBSTR(LoadError(dir).message(), scale);
  // A zero scale.
  dir = Damaged(Fp8Dir(), {},
                {{scale, DType::kF32, {}, std::vector<uint8_t>(4, 0)}});
  EXPECT_HAS_SUBSTR(LoadError(dir).message(), scale);
}

TEST_F(ModelWeightsTest, NormStoredAsFp8IsRejected) {
  for (const std::string name :
       {"model.norm.weight", "model.layers.0.input_layernorm.weight"}) {
    SCOPED_TRACE(name);
    std::vector<uint8_t> codes(32, FloatToFp8E4M3(1.0f));
    const std::string dir =
        Damaged(Bf16Dir(), {}, {{name, DType::kF8E4M3, {32}, codes}});
    const absl::Status status = LoadError(dir);
    EXPECT_HAS_SUBSTR(status.message(), name);
  }
}

TEST_F(ModelWeightsTest, MissingConfigIsAnError) {
  const std::string dir = Damaged(Bf16Dir(), {});
  ASSERT_TRUE(ModelWeights::Load(dir).ok());
  fs::remove(dir + "/config.json");
  EXPECT_HAS_SUBSTR(LoadError(dir).message(), "config.json");
}

}  // namespace
}  // namespace moe

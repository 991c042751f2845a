#include "core/model/gguf.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <random>

#include "tests/support/expect_has_substr.h"
#include "tests/support/gguf_test_file.h"
#include "tests/support/reference_model.h"

namespace moe::testing {
namespace {

std::vector<float> RandomValues(size_t count, uint64_t seed) {
  std::mt19937_64 generator(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> values(count);
  for (float& value : values) value = normal(generator);
  return values;
}

double F16At(const std::string& bytes, size_t offset) {
  return DecodeStoredValue(DType::kF16,
                           reinterpret_cast<const uint8_t*>(&bytes[offset]));
}

// The values GGML blocks encode, decoded here from the block definitions.
std::vector<double> DecodeBlocks(uint32_t type, const std::string& bytes,
                                 size_t count) {
  std::vector<double> out;
  const auto* raw = reinterpret_cast<const uint8_t*>(bytes.data());
  if (type == kGgmlF32 || type == kGgmlF16 || type == kGgmlBF16) {
    const DType dtype = type == kGgmlF32   ? DType::kF32
                        : type == kGgmlF16 ? DType::kF16
                                           : DType::kBF16;
    for (size_t i = 0; i < count; ++i) {
      out.push_back(DecodeStoredValue(dtype, raw + i * DTypeSize(dtype)));
    }
    return out;
  }
  const size_t block_bytes = type == kGgmlQ8_0   ? 34
                             : type == kGgmlQ4_0 ? 18
                                                 : 20;
  for (size_t b = 0; b < count / 32; ++b) {
    const size_t at = b * block_bytes;
    const double d = F16At(bytes, at);
    for (int j = 0; j < 32; ++j) {
      if (type == kGgmlQ8_0) {
        out.push_back(d * static_cast<int8_t>(raw[at + 2 + j]));
        continue;
      }
      const size_t quants = at + (type == kGgmlQ4_0 ? 2 : 4);
      const int q = j < 16 ? raw[quants + j] & 15 : raw[quants + j - 16] >> 4;
      out.push_back(type == kGgmlQ4_0 ? d * (q - 8)
                                      : d * q + F16At(bytes, at + 2));
    }
  }
  return out;
}

class DequantizeTest : public ::testing::TestWithParam<uint32_t> {};

TEST_P(DequantizeTest, ValuesFollowTheBlockDefinitions) {
  const uint32_t type = GetParam();
  const std::vector<float> values = RandomValues(64 * 3, type + 1);
  const std::string bytes = EncodeGgml(type, values);
  GgufTestFile file;
  file.AddTensor("w", {64, 3}, type, bytes);
  auto gguf = GgufFile::Open(file.Write("dequant.gguf"));
  ASSERT_TRUE(gguf.ok()) << gguf.status();
  const GgufTensor* tensor = (*gguf)->Find("w");
  ASSERT_NE(tensor, nullptr);
  EXPECT_EQ(tensor->shape(), (std::vector<int64_t>{3, 64}));
  EXPECT_EQ(tensor->num_bytes, bytes.size());
  auto decoded = (*gguf)->ReadFloats(*tensor);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  const std::vector<double> expected = DecodeBlocks(type, bytes, values.size());
  ASSERT_EQ(decoded->size(), expected.size());
  double max_error = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    // float32 arithmetic of exactly representable inputs: within one ulp.
    EXPECT_NEAR((*decoded)[i], expected[i], 1e-6 * std::fabs(expected[i]))
        << "value " << i;
    max_error = std::max(max_error, std::fabs(expected[i] - values[i]));
  }
  // And the encoding is a quantization of the input: 4-bit blocks of
  // N(0, 1) values are within half a step (range / 15) of it.
  EXPECT_LT(max_error, type == kGgmlQ4_0 || type == kGgmlQ4_1 ? 0.35 : 0.02);
}

INSTANTIATE_TEST_SUITE_P(Types, DequantizeTest,
                         ::testing::Values(kGgmlF32, kGgmlF16, kGgmlBF16,
                                           kGgmlQ8_0, kGgmlQ4_0, kGgmlQ4_1));

TEST(GgufFileTest, ReadsMetadataOfEveryValueTypeInVersions2And3) {
  GgufTestFile file;
  file.AddRaw("u8", kGgufUint8, GgufTestFile::Pod<uint8_t>(200));
  file.AddRaw("i8", kGgufInt8, GgufTestFile::Pod<int8_t>(-100));
  file.AddRaw("u16", kGgufUint16, GgufTestFile::Pod<uint16_t>(60000));
  file.AddRaw("i16", kGgufInt16, GgufTestFile::Pod<int16_t>(-30000));
  file.AddUint32("u32", 4000000000u);
  file.AddRaw("i32", kGgufInt32, GgufTestFile::Pod<int32_t>(-7));
  file.AddRaw("u64", kGgufUint64, GgufTestFile::Pod<uint64_t>(1ull << 40));
  file.AddRaw("i64", kGgufInt64, GgufTestFile::Pod<int64_t>(-(1ll << 40)));
  file.AddFloat32("f32", 0.5f);
  file.AddRaw("f64", kGgufFloat64, GgufTestFile::Pod<double>(1e-300));
  file.AddBool("yes", true);
  file.AddString("name", "Smol\xF0\x9F\x99\x82");
  file.AddStringArray("tokens", {"a", "", "bc"});
  file.AddInt32Array("types", {1, 3, 6});
  file.AddRaw("nested", kGgufArray,
              GgufTestFile::Pod<uint32_t>(kGgufArray) +
                  GgufTestFile::Pod<uint64_t>(1) +
                  GgufTestFile::Pod<uint32_t>(kGgufUint8) +
                  GgufTestFile::Pod<uint64_t>(2) + "\x01\x02");
  file.AddTensor("t", {32}, kGgmlF32, std::string(128, '\0'));
  for (uint32_t version : {2u, 3u}) {
    auto gguf = GgufFile::Open(
        file.Write("meta" + std::to_string(version) + ".gguf", version));
    ASSERT_TRUE(gguf.ok()) << gguf.status();
    const nlohmann::json& m = (*gguf)->metadata();
    EXPECT_EQ((*gguf)->version(), version);
    EXPECT_EQ(m["u8"], 200);
    EXPECT_EQ(m["i8"], -100);
    EXPECT_EQ(m["u16"], 60000);
    EXPECT_EQ(m["i16"], -30000);
    EXPECT_EQ(m["u32"], 4000000000u);
    EXPECT_EQ(m["i32"], -7);
    EXPECT_EQ(m["u64"], 1ull << 40);
    EXPECT_EQ(m["i64"], -(1ll << 40));
    EXPECT_EQ(m["f32"], 0.5);
    EXPECT_EQ(m["f64"], 1e-300);
    EXPECT_EQ(m["yes"], true);
    EXPECT_EQ(m["name"], "Smol\xF0\x9F\x99\x82");
    EXPECT_EQ(m["tokens"], nlohmann::json({"a", "", "bc"}));
    EXPECT_EQ(m["types"], nlohmann::json({1, 3, 6}));
    EXPECT_EQ(m["nested"], nlohmann::json::parse("[[1, 2]]"));
    ASSERT_EQ((*gguf)->tensors().size(), 1u);
  }
}

TEST(GgufFileTest, HonoursTheAlignmentKey) {
  GgufTestFile file;
  file.AddTensor("a", {32}, kGgmlF16,
                 EncodeGgml(kGgmlF16, RandomValues(32, 1)));
  const std::vector<float> b = RandomValues(32, 2);
  file.AddTensor("b", {32}, kGgmlF32, EncodeGgml(kGgmlF32, b));
  const std::string path = ::testing::TempDir() + "/aligned.gguf";
  std::ofstream(path, std::ios::binary) << file.Bytes(3, 256);
  auto gguf = GgufFile::Open(path);
  ASSERT_TRUE(gguf.ok()) << gguf.status();
  auto values = (*gguf)->ReadFloats(*(*gguf)->Find("b"));
  ASSERT_TRUE(values.ok());
  EXPECT_EQ(*values, b);
}

// Bytes of a small valid file, edited by each corruption case.
std::string ValidFile() {
  GgufTestFile file;
  file.AddString("general.architecture", "llama");
  file.AddStringArray("tokenizer.ggml.tokens", {"a", "b"});
  file.AddTensor("w", {32, 2}, kGgmlQ8_0,
                 EncodeGgml(kGgmlQ8_0, RandomValues(64, 3)));
  return file.Bytes();
}

absl::Status OpenBytes(const std::string& bytes, const std::string& name) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  return GgufFile::Open(path).status();
}

TEST(GgufFileTest, EveryTruncationFailsWithAClearError) {
  const std::string bytes = ValidFile();
  ASSERT_TRUE(OpenBytes(bytes, "full.gguf").ok());
  for (size_t length = 0; length < bytes.size(); ++length) {
    const absl::Status status =
        OpenBytes(bytes.substr(0, length), "truncated.gguf");
    ASSERT_FALSE(status.ok()) << "length " << length;
    const std::string message(status.message());
    EXPECT_TRUE(message.find("truncated") != std::string::npos ||
                message.find("not a GGUF file") != std::string::npos ||
                message.find("exceed") != std::string::npos)
        << "length " << length << ": " << message;
  }
}

TEST(GgufFileTest, CorruptFilesFailNamingTheProblem) {
  auto header_then = [](uint64_t tensors, uint64_t kvs,
                        const std::string& rest) {
    return "GGUF" + GgufTestFile::Pod<uint32_t>(3) +
           GgufTestFile::Pod<uint64_t>(tensors) +
           GgufTestFile::Pod<uint64_t>(kvs) + rest;
  };
  auto key = [](const std::string& name, uint32_t type, const std::string& v) {
    return GgufTestFile::String(name) + GgufTestFile::Pod(type) + v;
  };
  auto tensor_info = [](const std::string& name, std::vector<uint64_t> dims,
                        uint32_t type, uint64_t offset) {
    std::string out =
        GgufTestFile::String(name) + GgufTestFile::Pod<uint32_t>(dims.size());
    for (uint64_t dim : dims) out += GgufTestFile::Pod(dim);
    return out + GgufTestFile::Pod(type) + GgufTestFile::Pod(offset);
  };
  const std::string padding(256, '\0');
  struct Case {
    std::string bytes;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"GGML" + ValidFile().substr(4), "bad magic"},
      {"GGUF" + GgufTestFile::Pod<uint32_t>(1) + ValidFile().substr(8),
       "version 1 is not supported"},
      {header_then(0, 1, key("k", 99, "") + padding), "unknown value type 99"},
      {header_then(0, 1, key("flag", kGgufBool, "\x02") + padding),
       "flag: bool value 2"},
      {header_then(
           0, 1,
           key("s", kGgufString, GgufTestFile::Pod<uint64_t>(1ull << 60))),
       "truncated s"},
      {header_then(0, 1,
                   key("arr", kGgufArray,
                       GgufTestFile::Pod<uint32_t>(kGgufUint8) +
                           GgufTestFile::Pod<uint64_t>(1ull << 60)) +
                       padding),
       "arr: array of"},
      {header_then(0, 1,
                   key("strings", kGgufArray,
                       GgufTestFile::Pod<uint32_t>(kGgufString) +
                           GgufTestFile::Pod<uint64_t>(100)) +
                       padding),
       "strings: array of 100 elements exceeds the file"},
      {header_then(0, 1,
                   key("odd", kGgufArray,
                       GgufTestFile::Pod<uint32_t>(77) +
                           GgufTestFile::Pod<uint64_t>(1)) +
                       padding),
       "odd: unknown value type 77"},
      {header_then(0, 2,
                   key("k", kGgufUint32, GgufTestFile::Pod<uint32_t>(1)) +
                       key("k", kGgufUint32, GgufTestFile::Pod<uint32_t>(2)) +
                       padding),
       "duplicate metadata key k"},
      {header_then(1ull << 50, 0, padding), "exceed the file"},
      {header_then(1, 0, tensor_info("w5", {32, 1, 1, 1, 1}, 0, 0) + padding),
       "tensor w5 has 5 dimensions"},
      {header_then(1, 0, tensor_info("w0", {32, 0}, 0, 0) + padding),
       "tensor w0 has dimension 0"},
      {header_then(1, 0, tensor_info("wk", {256}, kGgmlQ4_K, 0) + padding),
       "GGML tensor type Q4_K is not supported"},
      {header_then(1, 0, tensor_info("wq", {48}, kGgmlQ8_0, 0) + padding),
       "rows of 48 are not whole Q8_0 blocks"},
      {header_then(1, 0, tensor_info("wm", {32}, kGgmlF32, 4) + padding),
       "tensor wm offset 4 is not aligned to 32"},
      {header_then(1, 0, tensor_info("wb", {4096}, kGgmlF32, 0) + padding),
       "tensor wb (16384 bytes at"},
      {header_then(2, 0,
                   tensor_info("d", {32}, kGgmlF32, 0) +
                       tensor_info("d", {32}, kGgmlF32, 128) + padding),
       "duplicate tensor d"},
      {header_then(0, 1,
                   key("general.alignment", kGgufUint32,
                       GgufTestFile::Pod<uint32_t>(3)) +
                       padding),
       "general.alignment 3 is not a power of two"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const absl::Status status = OpenBytes(cases[i].bytes, "corrupt.gguf");
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument)
        << "case " << i << ": " << status;
    EXPECT_HAS_SUBSTR(status.message(), cases[i].expected) << "case " << i;
    EXPECT_HAS_SUBSTR(status.message(), "corrupt.gguf") << "case " << i;
  }
  EXPECT_EQ(
      GgufFile::Open(::testing::TempDir() + "/absent.gguf").status().code(),
      absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace moe::testing

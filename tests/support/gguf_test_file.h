#ifndef MOE_TESTS_SUPPORT_GGUF_TEST_FILE_H_
#define MOE_TESTS_SUPPORT_GGUF_TEST_FILE_H_

#include <cstdint>
#include <string>
#include <vector>

namespace moe::testing {

// GGUF value type ids and GGML tensor type ids, from the format's
// specification (ggml/docs/gguf.md).
enum GgufTestValueType : uint32_t {
  kGgufUint8 = 0,
  kGgufInt8 = 1,
  kGgufUint16 = 2,
  kGgufInt16 = 3,
  kGgufUint32 = 4,
  kGgufInt32 = 5,
  kGgufFloat32 = 6,
  kGgufBool = 7,
  kGgufString = 8,
  kGgufArray = 9,
  kGgufUint64 = 10,
  kGgufInt64 = 11,
  kGgufFloat64 = 12,
};
enum GgmlTestType : uint32_t {
  kGgmlF32 = 0,
  kGgmlF16 = 1,
  kGgmlQ4_0 = 2,
  kGgmlQ4_1 = 3,
  kGgmlQ8_0 = 8,
  kGgmlQ4_K = 12,
  kGgmlBF16 = 30,
};

// Builds GGUF files byte by byte from the specification, for tests: little
// endian, strings as u64 length + bytes, tensor data aligned.
class GgufTestFile {
 public:
  // A key with a raw, already-encoded value of `type`.
  void AddRaw(const std::string& key, uint32_t type, std::string value);
  void AddUint32(const std::string& key, uint32_t value);
  void AddFloat32(const std::string& key, float value);
  void AddBool(const std::string& key, bool value);
  void AddString(const std::string& key, const std::string& value);
  void AddStringArray(const std::string& key,
                      const std::vector<std::string>& values);
  void AddInt32Array(const std::string& key,
                     const std::vector<int32_t>& values);
  void AddFloat32Array(const std::string& key,
                       const std::vector<float>& values);
  // `dims` in GGML order (innermost first); `data` the encoded bytes.
  void AddTensor(const std::string& name, std::vector<uint64_t> dims,
                 uint32_t type, std::string data);

  // The file's bytes. Tensor offsets are multiples of `alignment`; a
  // non-default alignment is also written as general.alignment.
  std::string Bytes(uint32_t version = 3, uint64_t alignment = 32) const;
  // Writes Bytes() under the test temp dir and returns the path.
  std::string Write(const std::string& name, uint32_t version = 3) const;

  static std::string String(const std::string& value);  // u64 length + bytes
  template <typename T>
  static std::string Pod(T value) {
    return std::string(reinterpret_cast<const char*>(&value), sizeof(T));
  }

 private:
  struct Tensor {
    std::string name;
    std::vector<uint64_t> dims;
    uint32_t type;
    std::string data;
  };
  std::vector<std::pair<std::string, std::string>> entries_;  // key, type+value
  std::vector<Tensor> tensors_;
};

// Test encoders of float values into GGML blocks (round to nearest), from
// the block definitions: Q8_0 = {f16 d, int8 q[32]}, value d·q;
// Q4_0 = {f16 d, u8 qs[16]}, value d·(q − 8); Q4_1 = {f16 d, f16 m, u8
// qs[16]}, value d·q + m; nibble j of the 16 bytes holds value j (low) and
// j + 16 (high).
std::string EncodeGgml(uint32_t type, const std::vector<float>& values);

}  // namespace moe::testing

#endif  // MOE_TESTS_SUPPORT_GGUF_TEST_FILE_H_

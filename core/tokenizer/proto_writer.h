#ifndef MOE_CORE_TOKENIZER_PROTO_WRITER_H_
#define MOE_CORE_TOKENIZER_PROTO_WRITER_H_

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace moe {

// Protocol buffer wire format, enough for the fields of
// sentencepiece_model.proto that gguf_sentencepiece_model.cc writes (the
// proto is not installed with SentencePiece, so it has no generated code).
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

}  // namespace moe

#endif  // MOE_CORE_TOKENIZER_PROTO_WRITER_H_

#include "gateway/received_request.h"

#include <string>

#include "google/protobuf/unknown_field_set.h"
#include "grpcpp/support/byte_buffer.h"
#include "gtest/gtest.h"
#include "moe/v1/inference.pb.h"
#include "tests/support/expect_has_substr.h"

namespace moe {
namespace {

using google::protobuf::UnknownFieldSet;

// What the gateway's handlers see for `bytes` on the wire.
ReceivedRequest<v1::GenerateRequest> Receive(const std::string& bytes) {
  grpc::Slice slice(bytes);
  grpc::ByteBuffer buffer(&slice, 1);
  ReceivedRequest<v1::GenerateRequest> request;
  const grpc::Status status = grpc::SerializationTraits<
      ReceivedRequest<v1::GenerateRequest>>::Deserialize(&buffer, &request);
  EXPECT_TRUE(status.ok()) << "parse errors are the handler's to answer";
  return request;
}

// Wire bytes of a GenerateRequest written field by field, so that string
// fields can hold what a protobuf library refuses to write.
std::string Wire(const UnknownFieldSet& fields) {
  std::string bytes;
  EXPECT_TRUE(fields.SerializeToString(&bytes));
  return bytes;
}

TEST(ReceivedRequestTest, AWellFormedRequestParses) {
  v1::GenerateRequest sent;
  sent.set_text("héllo");
  sent.add_stop("\n");
  sent.set_max_tokens(4);
  const ReceivedRequest<v1::GenerateRequest> received =
      Receive(sent.SerializeAsString());
  EXPECT_TRUE(received.parse_status.ok()) << received.parse_status;
  EXPECT_EQ(received.message.text(), "héllo");
  EXPECT_EQ(received.message.max_tokens(), 4);
}

TEST(ReceivedRequestTest, TextThatIsNotUtf8IsNamed) {
  UnknownFieldSet fields;
  fields.AddLengthDelimited(1, "caf\xC3");  // a character cut short
  fields.AddVarint(3, 4);
  const absl::Status status = Receive(Wire(fields)).parse_status;
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "text: not valid UTF-8");
}

TEST(ReceivedRequestTest, TheRepeatedFieldIsNamedWithItsIndex) {
  UnknownFieldSet fields;
  fields.AddLengthDelimited(1, "fine");
  fields.AddLengthDelimited(8, "stop");
  fields.AddLengthDelimited(8, "\xED\xA0\x80");  // a UTF-16 surrogate
  const absl::Status status = Receive(Wire(fields)).parse_status;
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "stop[1]: not valid UTF-8");
}

TEST(ReceivedRequestTest, BytesThatAreNoMessageAreSaidToBeSo) {
  // A length-delimited field 1 that claims more bytes than follow.
  const absl::Status status = Receive(
                                  "\x0a\x7f"
                                  "abc")
                                  .parse_status;
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_HAS_SUBSTR(status.message(), "request: 5 bytes");
  EXPECT_HAS_SUBSTR(status.message(), "moe.v1.GenerateRequest");
}

}  // namespace
}  // namespace moe

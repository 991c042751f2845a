#ifndef MOE_GATEWAY_RECEIVED_REQUEST_H_
#define MOE_GATEWAY_RECEIVED_REQUEST_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/stubs/logging.h"
#include "grpcpp/impl/codegen/serialization_traits.h"
#include "grpcpp/support/byte_buffer.h"

namespace moe {

// Why `bytes` do not parse as a message of type `descriptor`:
// INVALID_ARGUMENT naming the first string field that is not valid UTF-8
// ("stop[1]: not valid UTF-8"), or saying that the bytes are not a
// `descriptor` message at all.
absl::Status DescribeUnparseable(const google::protobuf::Descriptor& descriptor,
                                 absl::string_view bytes);

// A request as the server received it: the message, or why its bytes did
// not parse. gRPC answers a request it cannot parse with UNIMPLEMENTED and
// no message, before any handler runs; a handler that takes a
// ReceivedRequest sees the failure and can answer INVALID_ARGUMENT naming
// the field (see the SerializationTraits below).
template <typename Message>
struct ReceivedRequest {
  Message message;
  absl::Status parse_status;
};

}  // namespace moe

namespace grpc {

// Parsing into ReceivedRequest never fails the call: a parse error is kept
// in `parse_status` for the handler.
template <typename Message>
class SerializationTraits<moe::ReceivedRequest<Message>, void> {
 public:
  static Status Deserialize(ByteBuffer* buffer,
                            moe::ReceivedRequest<Message>* request) {
    std::vector<Slice> slices;
    if (!buffer->Dump(&slices).ok()) {
      request->parse_status = absl::InvalidArgumentError("request: no payload");
      return Status::OK;
    }
    std::string bytes;
    for (const Slice& slice : slices) {
      bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
    }
    buffer->Clear();
    bool parsed;
    {
      // Protobuf logs every string field that is not UTF-8; a client could
      // fill the log with them. The error goes back to the client instead.
      google::protobuf::LogSilencer silence;
      parsed = request->message.ParseFromString(bytes);
    }
    if (!parsed) {
      request->parse_status =
          moe::DescribeUnparseable(*Message::descriptor(), bytes);
    }
    return Status::OK;
  }
};

}  // namespace grpc

#endif  // MOE_GATEWAY_RECEIVED_REQUEST_H_

#ifndef MOE_TESTS_SUPPORT_HTTP_GET_H_
#define MOE_TESTS_SUPPORT_HTTP_GET_H_

#include <string>

#include "absl/status/statusor.h"

namespace moe::testing {

// The body of GET `path` from host:port `address` (HTTP/1.0, so the server
// closes the connection at the end); an error unless the status is 200.
absl::StatusOr<std::string> HttpGet(const std::string& address,
                                    const std::string& path);

}  // namespace moe::testing

#endif  // MOE_TESTS_SUPPORT_HTTP_GET_H_

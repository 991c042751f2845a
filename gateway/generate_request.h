#ifndef MOE_GATEWAY_GENERATE_REQUEST_H_
#define MOE_GATEWAY_GENERATE_REQUEST_H_

#include "absl/status/statusor.h"
#include "core/model/model_config.h"
#include "core/tokenizer/tokenizer.h"
#include "moe/v1/inference.pb.h"
#include "moe/v1/router.pb.h"

namespace moe {

// Checks every field of a public Generate request against the model and
// turns it into the router's request: the prompt as token ids (text
// tokenized with BOS as the model expects), the sampling parameters with
// their defaults applied. Errors are INVALID_ARGUMENT naming the field. The
// request id is copied as given (empty included). Stop strings stay with the
// gateway and are not part of the router's request.
absl::StatusOr<v1::RouterGenerateRequest> ToRouterRequest(
    const v1::GenerateRequest& request, const ModelConfig& config,
    const Tokenizer& tokenizer);

}  // namespace moe

#endif  // MOE_GATEWAY_GENERATE_REQUEST_H_

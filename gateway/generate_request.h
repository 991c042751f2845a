#ifndef MOE_GATEWAY_GENERATE_REQUEST_H_
#define MOE_GATEWAY_GENERATE_REQUEST_H_

#include <cstddef>
#include <string_view>

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
// gateway and are not part of the router's request. A text prompt of more
// than `max_prompt_bytes` is refused before it is tokenized.
absl::StatusOr<v1::RouterGenerateRequest> ToRouterRequest(
    const v1::GenerateRequest& request, const ModelConfig& config,
    const Tokenizer& tokenizer, size_t max_prompt_bytes);

// INVALID_ARGUMENT naming `field` when `text` has more than `max_bytes`.
absl::Status CheckPromptBytes(std::string_view field, std::string_view text,
                              size_t max_bytes);

// The default of --max-prompt-bytes: 16 bytes for each token of the context,
// four times what English text takes. Tokenizing costs time in proportion to
// the bytes, so it is spent only on prompts that may fit.
size_t DefaultMaxPromptBytes(const ModelConfig& config);

}  // namespace moe

#endif  // MOE_GATEWAY_GENERATE_REQUEST_H_

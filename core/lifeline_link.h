#ifndef MOE_CORE_LIFELINE_LINK_H_
#define MOE_CORE_LIFELINE_LINK_H_

#include <memory>

#include "core/message_link.h"

namespace moe {

// `link`, with its peer also watched over `lifeline`, a second channel to
// the same peer process that carries nothing: when the lifeline ends (the
// process died, its host went away), `link` is closed, so a Receive waiting
// for the lost peer fails at once, naming the lifeline, instead of at its
// deadline. NCCL does not notice a dead peer on its own; a gRPC stream does
// (its connection resets, or keepalive gives up).
std::unique_ptr<MessageLink> WithLifeline(
    std::unique_ptr<MessageLink> link, std::unique_ptr<MessageLink> lifeline);

}  // namespace moe

#endif  // MOE_CORE_LIFELINE_LINK_H_

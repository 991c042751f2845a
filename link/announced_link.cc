#include "link/announced_link.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/util/status_macros.h"

namespace moe {
namespace {

// An announcement is the payload's size, 8 bytes little-endian.
constexpr size_t kAnnouncementBytes = 8;

std::string Announcement(uint64_t size) {
  std::string bytes(kAnnouncementBytes, '\0');
  for (size_t i = 0; i < kAnnouncementBytes; ++i) {
    bytes[i] = static_cast<char>((size >> (8 * i)) & 0xff);
  }
  return bytes;
}

uint64_t AnnouncedSize(std::string_view bytes) {
  uint64_t size = 0;
  for (size_t i = 0; i < kAnnouncementBytes; ++i) {
    size |= uint64_t{static_cast<unsigned char>(bytes[i])} << (8 * i);
  }
  return size;
}

class AnnouncedLink : public MessageLink {
 public:
  AnnouncedLink(std::unique_ptr<MessageLink> announcements,
                std::unique_ptr<PayloadPipe> payloads,
                absl::Duration payload_timeout)
      : payloads_(std::move(payloads)),
        announcements_(std::move(announcements)),
        payload_timeout_(payload_timeout) {}
  ~AnnouncedLink() override { Close(); }

  // A failed Send leaves the closing to the owner (as MessageLink allows),
  // which may hold a lock that NCCL's abort should not be made under.
  absl::Status Send(std::string_view message) override {
    // The payload first: the peer receives it only once announced.
    MOE_RETURN_IF_ERROR(payloads_->Send(message));
    return announcements_->Send(Announcement(message.size()));
  }

  absl::StatusOr<std::string> Receive(absl::Time deadline) override {
    absl::StatusOr<std::string> announcement =
        announcements_->Receive(deadline);
    if (!announcement.ok()) return Broken(announcement.status());
    if (announcement->size() != kAnnouncementBytes) {
      return Broken(absl::UnavailableError(
          absl::StrCat("an announcement of ", announcement->size(),
                       " bytes, not ", kAnnouncementBytes)));
    }
    const uint64_t size = AnnouncedSize(*announcement);
    if (size > kMaxAnnouncedBytes) {
      return Broken(absl::UnavailableError(
          absl::StrCat("the peer announced ", size, " bytes, over the link's ",
                       kMaxAnnouncedBytes)));
    }
    absl::StatusOr<std::string> payload = payloads_->Receive(
        size, std::min(deadline, absl::Now() + payload_timeout_));
    if (!payload.ok()) {
      return Broken(absl::Status(
          payload.status().code(),
          absl::StrCat("a payload of ", size, " bytes announced but not ",
                       "received: ", payload.status().message())));
    }
    return payload;
  }

  void Close() override {
    // The announcements first: their end tells the peer to close its side.
    announcements_->Close();
    payloads_->Close();
  }

 private:
  absl::Status Broken(absl::Status status) {
    Close();
    return status;
  }

  // Declared first, destroyed last: the announcements may refer to it.
  const std::unique_ptr<PayloadPipe> payloads_;
  const std::unique_ptr<MessageLink> announcements_;
  const absl::Duration payload_timeout_;
};

}  // namespace

std::unique_ptr<MessageLink> NewAnnouncedLink(
    std::unique_ptr<MessageLink> announcements,
    std::unique_ptr<PayloadPipe> payloads, absl::Duration payload_timeout) {
  return std::make_unique<AnnouncedLink>(std::move(announcements),
                                         std::move(payloads), payload_timeout);
}

}  // namespace moe

#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

namespace tcpd {

// One UDP worker's buffers for a recvmmsg(2) batch and the sendmmsg(2) of its replies: each
// datagram's bytes, source address and ancillary data (the address it was sent to, and the
// socket's kernel drop count), and a reply per datagram aimed back at its source from the
// address it came to. Allocated once; a datagram's slot holds max_bytes + 1 so that a longer one
// shows as truncated.
class UdpBatch {
 public:
  UdpBatch(std::size_t size, std::size_t max_bytes);

  // Blocks until at least one datagram is there, then takes what is queued, up to size(). -1 with
  // errno on error.
  int receive(int fd);

  [[nodiscard]] std::size_t size() const { return msgs_.size(); }
  // False for the empty entry a shut-down socket returns instead of blocking: a real datagram,
  // even an empty one, always has a source.
  [[nodiscard]] bool is_datagram(std::size_t i) const { return msgs_[i].msg_hdr.msg_namelen > 0; }
  [[nodiscard]] std::string_view data(std::size_t i) const;
  [[nodiscard]] bool truncated(std::size_t i) const;  // longer than max_bytes
  [[nodiscard]] const sockaddr* source(std::size_t i) const;
  [[nodiscard]] uint16_t source_port(std::size_t i) const;
  // The socket's drop counter (SO_RXQ_OVFL) as the last datagram read reported it.
  [[nodiscard]] std::optional<uint32_t> kernel_drops() const { return drops_; }

  // A reply to datagram i, sent by send_replies(). `bytes` must outlive the send. `served`: an
  // answer to a request (counted sent), not an error notice (counted with its drop reason).
  void add_reply(std::size_t i, std::string_view bytes, bool served);
  struct Tally {
    uint64_t sent = 0;  // served replies sent
    uint64_t bytes = 0;
    uint64_t send_errors = 0;  // served replies that could not be sent
  };
  // Sends every reply added, skipping one that fails, and forgets them.
  Tally send_replies(int fd);

 private:
  void read_control(std::size_t i);

  struct Ancillary {
    // The destination address the datagram came to, to reply from it (IP_PKTINFO/IPV6_PKTINFO).
    bool has_v4 = false;
    bool has_v6 = false;
    in_pktinfo v4{};
    in6_pktinfo v6{};
  };
  static constexpr std::size_t kControl = 128;

  std::size_t slot_;
  // Not zeroed: the pages of slots no datagram has reached stay untouched (a worker's batch of
  // 64 KiB slots would otherwise be resident from the start).
  std::unique_ptr<char[]> bytes_;
  std::vector<sockaddr_storage> names_;
  std::vector<iovec> iovs_;
  std::vector<mmsghdr> msgs_;
  std::vector<char> control_;  // received ancillary data, kControl per datagram
  std::vector<Ancillary> ancillary_;
  std::optional<uint32_t> drops_;

  std::size_t replies_ = 0;
  std::vector<iovec> reply_iovs_;
  std::vector<mmsghdr> reply_msgs_;
  std::vector<uint8_t> reply_served_;
  std::vector<char> reply_control_;
};

}  // namespace tcpd

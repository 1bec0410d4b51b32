#include "udp_batch.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace tcpd {

UdpBatch::UdpBatch(std::size_t size, std::size_t max_bytes)
    : slot_(max_bytes + 1),
      bytes_(std::make_unique_for_overwrite<char[]>(size * slot_)),
      names_(size),
      iovs_(size),
      msgs_(size),
      control_(size * kControl),
      ancillary_(size),
      reply_iovs_(size),
      reply_msgs_(size),
      reply_served_(size),
      reply_control_(size * kControl) {}

int UdpBatch::receive(int fd) {
  for (std::size_t i = 0; i < msgs_.size(); ++i) {
    iovs_[i] = {bytes_.get() + i * slot_, slot_};
    msghdr& h = msgs_[i].msg_hdr;
    h.msg_name = &names_[i];
    h.msg_namelen = sizeof names_[i];
    h.msg_iov = &iovs_[i];
    h.msg_iovlen = 1;
    h.msg_control = control_.data() + i * kControl;
    h.msg_controllen = kControl;
    h.msg_flags = 0;
    msgs_[i].msg_len = 0;
  }
  // MSG_WAITFORONE: block for the first datagram only, then take what is already queued.
  const int n =
      ::recvmmsg(fd, msgs_.data(), static_cast<unsigned>(msgs_.size()), MSG_WAITFORONE, nullptr);
  for (int i = 0; i < n; ++i) read_control(static_cast<std::size_t>(i));
  return n;
}

void UdpBatch::read_control(std::size_t i) {
  Ancillary& a = ancillary_[i];
  a = {};
  msghdr& h = msgs_[i].msg_hdr;
  for (cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c)) {
    if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
      std::memcpy(&a.v6, CMSG_DATA(c), sizeof a.v6);
      a.has_v6 = true;
    } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      std::memcpy(&a.v4, CMSG_DATA(c), sizeof a.v4);
      a.has_v4 = true;
    } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
      uint32_t drops = 0;
      std::memcpy(&drops, CMSG_DATA(c), sizeof drops);
      drops_ = drops;
    }
  }
}

std::string_view UdpBatch::data(std::size_t i) const {
  const std::size_t n = std::min<std::size_t>(msgs_[i].msg_len, slot_ - 1);
  return {bytes_.get() + i * slot_, n};
}

bool UdpBatch::truncated(std::size_t i) const {
  return (msgs_[i].msg_hdr.msg_flags & MSG_TRUNC) != 0 || msgs_[i].msg_len >= slot_;
}

const sockaddr* UdpBatch::source(std::size_t i) const {
  return reinterpret_cast<const sockaddr*>(&names_[i]);
}

uint16_t UdpBatch::source_port(std::size_t i) const {
  const sockaddr* sa = source(i);
  if (sa->sa_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(sa)->sin6_port);
  }
  return ntohs(reinterpret_cast<const sockaddr_in*>(sa)->sin_port);
}

namespace {

// Makes `control` the message's one control message: `value` at (level, type).
template <typename T>
void put_control(msghdr& h, char* control, int level, int type, const T& value) {
  h.msg_control = control;
  h.msg_controllen = CMSG_SPACE(sizeof(T));
  cmsghdr* c = CMSG_FIRSTHDR(&h);
  c->cmsg_level = level;
  c->cmsg_type = type;
  c->cmsg_len = CMSG_LEN(sizeof(T));
  std::memcpy(CMSG_DATA(c), &value, sizeof value);
}

}  // namespace

void UdpBatch::add_reply(std::size_t i, std::string_view bytes, bool served) {
  const std::size_t r = replies_++;
  reply_served_[r] = served ? 1 : 0;
  reply_iovs_[r] = {const_cast<char*>(bytes.data()), bytes.size()};
  msghdr& h = reply_msgs_[r].msg_hdr;
  h = {};
  h.msg_name = &names_[i];
  h.msg_namelen = msgs_[i].msg_hdr.msg_namelen;
  h.msg_iov = &reply_iovs_[r];
  h.msg_iovlen = 1;
  const Ancillary& a = ancillary_[i];
  char* control = reply_control_.data() + r * kControl;
  // The reply leaves from the address the datagram came to (a wildcard socket would otherwise
  // pick by route, and the client would drop a reply from an address it did not ask). Not for
  // a multicast destination, which cannot be a source.
  if (a.has_v6 && !IN6_IS_ADDR_MULTICAST(&a.v6.ipi6_addr)) {
    in6_pktinfo from{};
    from.ipi6_addr = a.v6.ipi6_addr;
    // The interface matters only for a link-local address, which is ambiguous without it.
    from.ipi6_ifindex = IN6_IS_ADDR_LINKLOCAL(&a.v6.ipi6_addr) ? a.v6.ipi6_ifindex : 0;
    put_control(h, control, IPPROTO_IPV6, IPV6_PKTINFO, from);
  } else if (a.has_v4 && !IN_MULTICAST(ntohl(a.v4.ipi_addr.s_addr))) {
    in_pktinfo from{};
    from.ipi_spec_dst = a.v4.ipi_addr;
    put_control(h, control, IPPROTO_IP, IP_PKTINFO, from);
  }
}

UdpBatch::Tally UdpBatch::send_replies(int fd) {
  Tally t;
  std::size_t done = 0;
  while (done < replies_) {
    const int n = ::sendmmsg(fd, reply_msgs_.data() + done, static_cast<unsigned>(replies_ - done),
                             MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    const std::size_t end = n > 0 ? done + static_cast<std::size_t>(n) : done;
    for (; done < end; ++done) {
      if (reply_served_[done] == 0) continue;
      ++t.sent;
      t.bytes += reply_iovs_[done].iov_len;
    }
    // sendmmsg() reports an error only for the first message it could not send: skip that one.
    if (n <= 0) t.send_errors += reply_served_[done++];
  }
  replies_ = 0;
  return t;
}

}  // namespace tcpd

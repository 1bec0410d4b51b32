#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <string_view>

#include "socket.hpp"

namespace tcpd {

// The PROXY protocol header (HAProxy's doc/proxy-protocol.txt, versions 1 and 2) a load balancer
// puts before a connection's own bytes to say who the client is.
struct ProxyHeader {
  enum class Status {
    need_more,  // a valid beginning: wait for more bytes
    bad,        // not a header, or a malformed one: the connection must be closed
    done,       // `length` bytes are the whole header
  };
  Status status = Status::need_more;
  std::size_t length = 0;
  // The client's address (done). False for v2 LOCAL (a balancer's health check), v1 UNKNOWN and
  // the v2 UNSPEC and UNIX families: the connection's own addresses stand.
  bool has_source = false;
  PeerAddress source;
  std::string_view why;  // bad: what is wrong, for the log
};

// The longest header accepted: a v1 line is at most 107 bytes; a v2 header is 16 bytes and its
// addresses and TLVs, which tcpd skips, bounded here so that a sender cannot make a connection
// buffer 64 KiB before it is known to be a client.
inline constexpr std::size_t kMaxProxyHeader = 1024;

// Parses the header at the front of `bytes`, the connection's first bytes. Never reads past
// `bytes`; a prefix of a valid header is need_more, whatever is split where.
ProxyHeader parse_proxy_header(std::string_view bytes);

}  // namespace tcpd

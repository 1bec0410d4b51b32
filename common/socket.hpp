#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "clock.hpp"
#include "fd.hpp"

namespace tcpd {

// Binds and listens. An empty `address` means every interface: IPv6 dual-stack ("::") where the
// host has IPv6, else 0.0.0.0. Throws std::system_error naming the address on failure, or
// std::runtime_error when the name does not resolve.
// `reuseport` sets SO_REUSEPORT, so that several processes can share the port.
Fd listen_tcp(const std::string& address, uint16_t port, int backlog, bool reuseport = false);

// A peer's address, kept per connection so that a log line can name the peer after it has gone
// (getpeername() fails then). 28 bytes: an IPv6 address at most.
struct PeerAddress {
  union {
    sockaddr sa;
    sockaddr_in v4;
    sockaddr_in6 v6;
  } addr{};
  void set(const sockaddr* sa, socklen_t len);
  [[nodiscard]] std::string str() const;  // "127.0.0.1:5555", "[::1]:5555", "?"
};

// "127.0.0.1:80", "[::1]:80", "localhost:80": the one way an address and port are written.
std::string host_port(std::string_view host, uint16_t port);

// "127.0.0.1:80", "[::1]:80"; "?" when the address cannot be read.
std::string format_address(const sockaddr* sa, socklen_t len);
std::string local_address(int fd);
uint16_t local_port(int fd);

struct ConnectResult {
  Fd fd;      // valid on success: a non-blocking, connected socket
  int error;  // errno of the last attempt (ETIMEDOUT when the deadline passed), 0 on success
  std::string detail;  // set for resolver failures, which have no errno
};

// Resolves `host` (IPv4 or IPv6) and tries each address in turn until one connects or the
// deadline passes. With a `source`, the socket is bound to it first, and only addresses of its
// family are tried (EAFNOSUPPORT when `host` has none).
ConnectResult connect_tcp(const std::string& host, uint16_t port, Clock::time_point deadline,
                          const sockaddr* source = nullptr, socklen_t source_len = 0);
ConnectResult connect_addr(const sockaddr* sa, socklen_t len, Clock::time_point deadline,
                           const sockaddr* source = nullptr, socklen_t source_len = 0);

enum class IoStatus {
  ok,         // bytes moved (read_some: at least one)
  closed,     // orderly EOF from the peer
  timed_out,  // the deadline passed first
  reset,      // ECONNRESET / EPIPE
  woken,      // `wake_fd` became readable first; nothing was moved
  error,      // anything else; `err` says what
};

struct IoResult {
  IoStatus status;
  std::size_t bytes = 0;
  int err = 0;
};

// Blocking-style I/O with deadlines: each call blocks in poll(2) until it can make progress, the
// deadline passes, or `wake_fd` (an eventfd announcing work or shutdown; -1 for none) becomes
// readable. EINTR is retried. The socket may be
// blocking or not: every recv/send here passes MSG_DONTWAIT.
IoResult read_some(int fd, char* buf, std::size_t len, Clock::time_point deadline,
                   int wake_fd = -1);
IoResult write_all(int fd, std::string_view data, Clock::time_point deadline, int wake_fd = -1);

// Waits until `fd` is readable (data, EOF or error), the deadline passes, or `wake_fd` is
// readable. Returns ok / timed_out / woken.
IoStatus wait_readable(int fd, Clock::time_point deadline, int wake_fd = -1);

// Sets SO_RCVTIMEO / SO_SNDTIMEO: the bound on a blocking recv() (and accept()) or send() (and
// connect()). Returns false when setsockopt fails.
bool set_io_timeout(int fd, int option, Millis timeout);

// One non-blocking send; used where the caller must never wait (the acceptor's rejections).
bool send_now(int fd, std::string_view data);

// What the peer has sent that is not read yet, looked at without reading it or waiting.
enum class Pending { nothing, input, closed, error };  // input: bytes; closed: its FIN first
Pending peek_input(int fd);

// Reads and discards whatever is already queued, up to `limit` bytes. Returns false on EOF or
// error, true when the socket is still open.
bool discard_input(int fd, std::size_t limit);

}  // namespace tcpd

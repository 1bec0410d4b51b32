#pragma once

#include <string>
#include <string_view>

#include "clock.hpp"
#include "fd.hpp"
#include "socket.hpp"

namespace tcpd {

// Why a request did not get the reply it wanted.
enum class Failure { none, refused, reset, timeout, busy, too_long, mismatch, other };
inline constexpr int kFailureKinds = 8;
std::string_view failure_name(Failure f);

// One request/reply on a connection: sends `request` (which ends in '\n'), reads up to the
// reply's newline or the server's close. Bytes after the newline are kept for the next reply.
struct ReplyResult {
  Failure failure = Failure::none;
  int err = 0;          // errno behind reset/timeout/other, when there is one
  std::string reply;    // without its newline (and '\r')
  bool closed = false;  // the server closed after this reply (a one-shot reply)
};

class Connection {
 public:
  // Takes a connected socket and makes it blocking with SO_RCVTIMEO/SO_SNDTIMEO = `timeout`:
  // a request then costs one send and (usually) one recv, as in the tools tcpc is compared
  // with, and each of them is still bounded.
  Connection(Fd fd, Millis timeout);
  // For a socket from connect_blocking(), already set up that way.
  struct Ready {};
  Connection(Fd fd, Ready) : fd_(std::move(fd)) {}
  ReplyResult request(std::string_view request);

 private:
  Fd fd_;
  std::string in_;
};

// A blocking socket whose connect, sends and receives are each bounded by `timeout` through
// SO_SNDTIMEO/SO_RCVTIMEO (Linux bounds a blocking connect by SO_SNDTIMEO): four system calls
// per connection, for load mode's connection-per-request runs.
ConnectResult connect_blocking(const sockaddr* sa, socklen_t len, Millis timeout);

// Maps an ERR line to its failure, and checks --expect.
Failure classify_reply(std::string_view reply, const std::string* expect);
// The failure kind of a connect() errno.
Failure classify_connect(int err);

}  // namespace tcpd

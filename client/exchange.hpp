#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "clock.hpp"
#include "fd.hpp"
#include "socket.hpp"

namespace tcpd {

// Why a request did not get the reply it wanted.
// too_long: the server said ERR too long; reply_too_long: the reply passed --max-reply.
enum class Failure {
  none,
  refused,
  reset,
  timeout,
  busy,
  too_long,
  mismatch,
  other,
  reply_too_long
};
inline constexpr int kFailureKinds = 9;
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
  // with. A request and its whole reply are bounded by `timeout` together (a server that
  // trickles cannot stretch it), and a reply by `max_reply` bytes.
  Connection(Fd fd, Millis timeout, std::size_t max_reply);
  ReplyResult request(std::string_view request);

 private:
  // The socket's timeouts for what is left of the request's `deadline`; false once it passed.
  bool bound_by(Clock::time_point deadline);
  std::optional<ReplyResult> send_all(std::string_view request, Clock::time_point deadline);
  ReplyResult read_reply(Clock::time_point deadline, bool rearm);

  Fd fd_;
  Millis timeout_;
  std::size_t max_reply_;
  std::string in_;
};

// Maps an ERR line to its failure, and checks --expect.
Failure classify_reply(std::string_view reply, const std::string* expect);
// The failure kind of a connect() errno.
Failure classify_connect(int err);

}  // namespace tcpd

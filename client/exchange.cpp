#include "exchange.hpp"

#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>

#include <fcntl.h>
#include <sys/socket.h>

#include "socket.hpp"

namespace tcpd {

std::string_view failure_name(Failure f) {
  switch (f) {
    case Failure::none: return "ok";
    case Failure::refused: return "refused";
    case Failure::reset: return "reset";
    case Failure::timeout: return "timeout";
    case Failure::busy: return "busy";
    case Failure::too_long: return "too_long";
    case Failure::mismatch: return "mismatch";
    case Failure::other: return "other";
    case Failure::reply_too_long: return "reply_too_long";
  }
  return "other";
}

Failure classify_reply(std::string_view reply, const std::string* expect) {
  if (reply == "ERR busy") return Failure::busy;
  if (reply == "ERR too long") return Failure::too_long;
  if (expect != nullptr && reply != *expect) return Failure::mismatch;
  return Failure::none;
}

Failure classify_connect(int err) {
  switch (err) {
    case ECONNREFUSED: return Failure::refused;
    case ETIMEDOUT: return Failure::timeout;
    case ECONNRESET: return Failure::reset;
    default: return Failure::other;
  }
}

namespace {

void set_timeouts(int fd, Millis timeout) {
  set_io_timeout(fd, SO_RCVTIMEO, timeout);
  set_io_timeout(fd, SO_SNDTIMEO, timeout);
}

}  // namespace

Connection::Connection(Fd fd, Millis timeout, std::size_t max_reply)
    : fd_(std::move(fd)), timeout_(timeout), max_reply_(max_reply) {
  const int flags = ::fcntl(fd_.get(), F_GETFL);
  ::fcntl(fd_.get(), F_SETFL, flags & ~O_NONBLOCK);
  set_timeouts(fd_.get(), timeout);
}

bool Connection::bound_by(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now());
  if (left.count() <= 0) return false;
  set_timeouts(fd_.get(), left);
  return true;
}

namespace {

// errno of a blocking call with SO_*TIMEO: EAGAIN means the timeout passed.
ReplyResult errno_failure(int err) {
  if (err == EAGAIN || err == EWOULDBLOCK) return {Failure::timeout, ETIMEDOUT, {}, false};
  if (err == ECONNRESET || err == EPIPE) return {Failure::reset, err, {}, false};
  return {Failure::other, err, {}, false};
}

}  // namespace

// A call after the first of its kind (or a first recv after a slow send) re-arms the socket's
// timeouts with what is left of the request's deadline; a request answered by one quick send
// and one recv costs no extra system call.
ReplyResult Connection::request(std::string_view request) {
  const auto start = Clock::now();
  const auto deadline = start + timeout_;
  if (auto failed = send_all(request, deadline)) return *failed;
  return read_reply(deadline, Clock::now() - start > Millis{1});
}

std::optional<ReplyResult> Connection::send_all(std::string_view request,
                                                Clock::time_point deadline) {
  bool rearm = false;
  std::size_t sent = 0;
  while (sent < request.size()) {
    if (std::exchange(rearm, true) && !bound_by(deadline)) return errno_failure(EAGAIN);
    ssize_t n = ::send(fd_.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_failure(errno);
    }
    sent += static_cast<std::size_t>(n);
  }
  return std::nullopt;
}

// The reply up to its newline, or up to the server's close (a one-shot server). Bytes after the
// newline stay for the next reply.
ReplyResult Connection::read_reply(Clock::time_point deadline, bool rearm) {
  std::size_t scanned = 0;
  for (;;) {
    if (auto nl = in_.find('\n', scanned); nl != std::string::npos) {
      ReplyResult res;
      std::size_t len = nl;
      if (len > 0 && in_[len - 1] == '\r') --len;
      res.reply.assign(in_, 0, len);
      in_.erase(0, nl + 1);
      return res;
    }
    scanned = in_.size();
    if (in_.size() > max_reply_) {
      in_.clear();
      return {Failure::reply_too_long, 0, {}, false};
    }
    if (std::exchange(rearm, true) && !bound_by(deadline)) return errno_failure(EAGAIN);
    char buf[16 * 1024];
    ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
    if (n > 0) {
      in_.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_failure(errno);
    if (in_.empty()) return {Failure::other, 0, {}, true};  // closed without a reply
    ReplyResult res{Failure::none, 0, std::move(in_), true};
    in_.clear();
    return res;
  }
}

}  // namespace tcpd

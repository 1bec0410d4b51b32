#include "exchange.hpp"

#include <cerrno>
#include <cstring>

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

ReplyResult io_failure(const IoResult& r) {
  switch (r.status) {
    case IoStatus::timed_out: return {Failure::timeout, ETIMEDOUT, {}, false};
    case IoStatus::reset: return {Failure::reset, r.err, {}, false};
    default: return {Failure::other, r.err, {}, false};
  }
}

}  // namespace

ReplyResult Connection::request(std::string_view request, Clock::time_point deadline) {
  IoResult w = write_all(fd_.get(), request, deadline);
  if (w.status != IoStatus::ok) return io_failure(w);
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
    char buf[16 * 1024];
    IoResult r = read_some(fd_.get(), buf, sizeof buf, deadline);
    if (r.status == IoStatus::ok) {
      in_.append(buf, r.bytes);
      continue;
    }
    if (r.status == IoStatus::closed) {
      if (in_.empty()) return {Failure::other, 0, {}, true};  // closed without a reply
      // A reply ended by the close rather than a newline: a one-shot server.
      ReplyResult res{Failure::none, 0, std::move(in_), true};
      in_.clear();
      return res;
    }
    return io_failure(r);
  }
}

}  // namespace tcpd

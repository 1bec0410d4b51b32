#include "session.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

#include <algorithm>
#include <optional>
#include <utility>

#include "log.hpp"
#include "socket.hpp"

namespace tcpd {
namespace {

constexpr std::size_t kReadChunk = std::size_t{16} * 1024;
// A deadline that has always passed: one non-blocking read, without reading the clock first.
constexpr Clock::time_point kNoWait = Clock::time_point::min();

bool is_draining(const SessionEnv& env) {
  return env.draining.load(std::memory_order_acquire);
}

// Every wait is cut short by the drain deadline once a drain has begun.
Clock::time_point capped(Clock::time_point t, const SessionEnv& env) {
  if (!is_draining(env)) return t;
  Clock::time_point d{Clock::duration{env.drain_deadline.load(std::memory_order_relaxed)}};
  return std::min(t, d);
}

// While not draining, the drain's start must interrupt a long wait so the wait can be re-cut.
int stop_wake(const SessionEnv& env) {
  return is_draining(env) ? -1 : env.stop_fd;
}

// The one mapping from an I/O failure to how the connection ended. Once the drain has begun,
// its deadline is what cut a wait short.
Outcome outcome_of(IoStatus st, const SessionEnv& env) {
  switch (st) {
    case IoStatus::timed_out: return is_draining(env) ? Outcome::shutdown : Outcome::io_timeout;
    case IoStatus::reset: return Outcome::reset;
    default: return Outcome::error;
  }
}

Verdict close_with(Outcome o, bool linger = false) {
  return {Verdict::Kind::close, o, linger};
}

Outcome peer_closed(const Session& s) {
  return s.replies > 0 ? Outcome::served : Outcome::no_request;
}

// An I/O failure while no request is under way. A reset after the client's replies is how many
// clients close (a load balancer's health check: connect, one line, RST): that session was
// served. A reset in the middle of a request, or before any reply, is a reset.
Outcome between_requests(IoStatus st, const Session& s, const SessionEnv& env) {
  if (st == IoStatus::reset && s.replies > 0 && s.framer.empty()) return Outcome::served;
  return outcome_of(st, env);
}

}  // namespace

Outcome drained(const Session& s) {
  return s.replies > 0 ? Outcome::served : Outcome::shutdown;
}

namespace {

// --delay-ms: simulated work. A drain shortens it to the drain deadline.
void simulated_work(const SessionEnv& env) {
  if (env.will_block) env.will_block();
  const auto end = Clock::now() + env.config.delay;
  for (;;) {
    const auto until = capped(end, env);
    pollfd p{is_draining(env) ? -1 : env.stop_fd, POLLIN, 0};
    int rc = ::poll(&p, 1, poll_timeout_ms(until));
    if (rc == 0 || Clock::now() >= until) return;
    // rc > 0: the drain began; loop to re-cut. rc < 0: EINTR; loop.
  }
}

void count_sent(Session& s, std::size_t n, const SessionEnv& env) {
  s.bytes_out += n;
  env.stats.sent(n);
}

IoResult write_out(Session& s, std::string_view out, const SessionEnv& env) {
  // Most replies fit in the socket's buffer: one send, no clock. A reply that does not (its
  // client is not reading) would block this worker up to the io timeout: it lends the lead
  // first, so that sessions becoming ready meanwhile do not wait for it.
  IoResult first = write_all(s.fd.get(), out, kNoWait);
  count_sent(s, first.bytes, env);
  if (first.status != IoStatus::timed_out) return first;
  out.remove_prefix(first.bytes);
  if (env.will_block) env.will_block();
  for (;;) {
    const auto deadline = capped(Clock::now() + env.config.io_timeout, env);
    IoResult r = write_all(s.fd.get(), out, deadline, stop_wake(env));
    count_sent(s, r.bytes, env);
    if (r.status != IoStatus::woken) return r;
    out.remove_prefix(r.bytes);
  }
}

// A new request's first bytes have just arrived.
void request_begins(Session& s, const SessionEnv& env) {
  s.request_started = s.last_byte;
  s.request_deadline = s.last_byte + env.config.io_timeout;
}

void count_received(Session& s, std::size_t n, const SessionEnv& env) {
  s.framer.commit(n);
  s.bytes_in += n;
  env.stats.received(n);
  s.last_byte = Clock::now();
}

// The one-shot reply: no newline, then a graceful close. Written from where it is: an echoed
// request straight from the framer.
Verdict answer_one_shot(Session& s, const SessionEnv& env) {
  if (env.config.delay.count() > 0) simulated_work(env);
  const std::string_view reply =
      env.config.mode == Mode::echo ? s.framer.pending() : std::string_view(env.config.reply);
  IoResult r = write_out(s, reply, env);
  s.framer.clear();
  if (r.status != IoStatus::ok) return close_with(outcome_of(r.status, env));
  ++s.replies;
  env.stats.replies(1, s.request_started, Clock::now());
  return close_with(Outcome::served, true);
}

// Reads into the framer. Returns the status; on ok the bytes are committed. The first byte of a
// request starts its io-timeout clock. A deadline already passed (kNoWait) is one non-blocking
// read.
IoResult receive(Session& s, Clock::time_point deadline, int wake_fd, const SessionEnv& env,
                 std::size_t chunk = kReadChunk) {
  if (s.ended_ahead != IoStatus::ok) return {std::exchange(s.ended_ahead, IoStatus::ok)};
  char* dst = s.framer.prepare(chunk);
  IoResult r = read_some(s.fd.get(), dst, chunk, deadline, wake_fd);
  s.read_full = r.status == IoStatus::ok && r.bytes == chunk;
  if (r.status == IoStatus::ok) {
    count_received(s, r.bytes, env);
    if (s.request_deadline == Clock::time_point::max()) request_begins(s, env);
  }
  return r;
}

}  // namespace

void finish(const Session& s, Outcome outcome, const SessionEnv& env) {
  env.stats.ended(outcome);
  if (env.config.log_level < LogLevel::info) return;
  const std::string peer = s.peer.str();
  log_connection({peer, outcome_name(outcome), s.replies, s.bytes_in, s.bytes_out,
                  std::chrono::duration<double, std::milli>(Clock::now() - s.accepted).count()});
}

namespace {

// The replies gathered in one turn, not written yet.
struct Batch {
  std::string& out;
  uint64_t replies = 0;
  Clock::time_point sent{};  // when the last write ended: one clock read per write
};

void count_replies(Session& s, const SessionEnv& env, Batch& b, uint64_t n) {
  b.sent = Clock::now();
  s.replies += n;
  env.stats.replies(n, s.request_started, b.sent);
}

// Writes the replies gathered and counts them once they are out.
std::optional<Verdict> flush(Session& s, const SessionEnv& env, Batch& b) {
  if (b.out.empty()) return std::nullopt;
  IoResult r = write_out(s, b.out, env);
  b.out.clear();
  if (r.status != IoStatus::ok) return close_with(outcome_of(r.status, env));
  count_replies(s, env, b, std::exchange(b.replies, 0));
  return std::nullopt;
}

// Adds one reply, writing first whenever kReplyBuffer bytes would be exceeded; a reply longer
// than that is written on its own, from where it already is.
std::optional<Verdict> add_reply(Session& s, const SessionEnv& env, Batch& b,
                                 std::string_view reply) {
  if (b.out.size() + reply.size() + 1 > kReplyBuffer) {
    if (auto v = flush(s, env, b)) return v;
  }
  if (reply.size() + 1 > kReplyBuffer) {
    IoResult r = write_out(s, reply, env);
    if (r.status == IoStatus::ok) r = write_out(s, "\n", env);
    if (r.status != IoStatus::ok) return close_with(outcome_of(r.status, env));
    count_replies(s, env, b, 1);
    return std::nullopt;
  }
  b.out += reply;
  b.out += '\n';
  ++b.replies;
  return std::nullopt;
}

// Step 1: answers every complete request received so far. Sets `answered` when it wrote any.
std::optional<Verdict> answer_ready(Session& s, const SessionEnv& env, std::string& out,
                                    bool& answered) {
  const ServerConfig& cfg = env.config;
  out.clear();
  Batch b{out};
  const uint64_t before = s.replies;
  for (;;) {
    LineFramer::Next next = s.framer.next();
    if (next.status == LineFramer::Status::need_more) break;
    if (next.status == LineFramer::Status::too_long) {
      b.out += kErrTooLong;
      if (auto v = flush(s, env, b)) return v;
      return close_with(Outcome::too_long, true);
    }
    s.line_client = true;
    if (cfg.delay.count() > 0) simulated_work(env);
    const std::string_view reply = cfg.mode == Mode::echo ? next.line : cfg.reply;
    if (auto v = add_reply(s, env, b, reply)) return v;
  }
  if (auto v = flush(s, env, b)) return v;
  if (s.replies == before) {
    if (s.framer.empty()) s.request_deadline = Clock::time_point::max();
    return std::nullopt;
  }
  answered = true;
  const auto now = b.sent;
  s.idle_deadline = now + cfg.idle_timeout;
  // Each request has its own whole-request deadline. The bytes left after the last newline
  // began the next request in the latest read; its clock starts no earlier than now, once the
  // requests before it are answered, so the server's own time never counts against it.
  if (s.framer.empty()) {
    s.request_deadline = Clock::time_point::max();
  } else {
    s.request_started = now;
    s.request_deadline = now + cfg.io_timeout;
  }
  return std::nullopt;
}

// The request in progress timed out: for a client that has not sent a newline yet that is the
// one-shot pause (or the drain cutting it short), otherwise a late request.
Verdict request_timed_out(Session& s, const SessionEnv& env) {
  if (!s.line_client && Clock::now() < s.request_deadline) return answer_one_shot(s, env);
  return close_with(outcome_of(IoStatus::timed_out, env));
}

// Step 2: a request is arriving. A line client's request whose next bytes are not there yet is
// parked with its partial request, keeping that request's deadline: a slow (or slow-loris)
// client holds no worker between its bytes. A client that has not sent a newline yet keeps the
// worker for the one-shot pause, bounded by the request's io timeout. The drain keeps the
// worker on it too, until the drain deadline.
std::optional<Verdict> continue_request(Session& s, const SessionEnv& env) {
  const bool may_park = s.line_client && !is_draining(env);
  auto until = may_park ? kNoWait : s.request_deadline;
  if (!s.line_client) until = std::min(until, s.last_byte + kOneShotPause);
  if (!may_park && env.will_block) env.will_block();
  IoResult r = receive(s, capped(until, env), stop_wake(env), env);
  switch (r.status) {
    case IoStatus::ok:
    case IoStatus::woken: return std::nullopt;  // woken: the drain began; look again
    case IoStatus::closed:
      // Half-close ends the last request. A client that never sent a newline gets the
      // one-shot reply; a line client gets a line.
      if (!s.line_client) return answer_one_shot(s, env);
      s.framer.append("\n");
      return std::nullopt;
    case IoStatus::timed_out:
      if (may_park && Clock::now() < s.request_deadline) return Verdict{Verdict::Kind::park};
      return request_timed_out(s, env);
    default: return close_with(outcome_of(r.status, env));
  }
}

// Between requests while the drain runs: serve what has already arrived, then close. A
// connection that has sent nothing yet gets kFirstRequestGrace from its accept.
std::optional<Verdict> drain_between_requests(Session& s, const SessionEnv& env) {
  auto until = Clock::now();
  if (s.replies == 0) until = std::max(until, capped(s.accepted + kFirstRequestGrace, env));
  if (env.will_block) env.will_block();
  IoResult r = receive(s, until, -1, env);
  switch (r.status) {
    case IoStatus::ok: return std::nullopt;
    case IoStatus::closed: return close_with(peer_closed(s));
    case IoStatus::timed_out: return close_with(drained(s));
    default: return close_with(between_requests(r.status, s, env));
  }
}

// Between requests. Right after a reply the client's next request is almost never there yet
// (it has to read the reply first), so the session is parked without a read that would find
// nothing, unless the last read filled its buffer (a pipelined burst: the rest is in the socket
// already, and no event would come for it); otherwise (just taken from the queue or the parked
// set) its bytes are usually there.
std::optional<Verdict> next_request(Session& s, const SessionEnv& env, bool answered_this_turn) {
  if (answered_this_turn && !s.read_full) return Verdict{Verdict::Kind::park};
  IoResult r = receive(s, kNoWait, -1, env);
  switch (r.status) {
    case IoStatus::ok: return std::nullopt;
    case IoStatus::timed_out: return Verdict{Verdict::Kind::park};
    case IoStatus::closed: return close_with(peer_closed(s));
    default: return close_with(between_requests(r.status, s, env));
  }
}

}  // namespace

void read_ahead(Session& s, LineFramer::Buffer& buffer, const SessionEnv& env) {
  s.framer.borrow(buffer);
  // Nothing there (a stale event) is not kept: a client that has not sent a newline yet may
  // still be owed its one-shot pause, which serve() waits for.
  const IoStatus st = receive(s, kNoWait, -1, env, kReadAheadChunk).status;
  if (st == IoStatus::closed || st == IoStatus::reset || st == IoStatus::error) s.ended_ahead = st;
}

// One named step per state: answer what is complete, finish a request under way, or look for
// the next request (the drain gives it a moment instead of parking it).
Verdict serve(Session& s, const SessionEnv& env, std::string& out) {
  bool answered_this_turn = false;
  for (;;) {
    if (auto v = answer_ready(s, env, out, answered_this_turn)) return *v;
    std::optional<Verdict> v;
    if (!s.framer.empty()) {
      v = continue_request(s, env);
    } else if (is_draining(env)) {
      v = drain_between_requests(s, env);
    } else {
      v = next_request(s, env, answered_this_turn);
    }
    if (v) return *v;
  }
}

}  // namespace tcpd

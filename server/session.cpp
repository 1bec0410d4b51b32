#include "session.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

#include <algorithm>
#include <optional>
#include <utility>

#include "admission.hpp"
#include "log.hpp"
#include "proxy_header.hpp"
#include "replies.hpp"
#include "socket.hpp"

namespace tcpd {
namespace {

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

Outcome expired_outcome(const Session& s, bool draining) {
  if (s.awaiting_proxy) return draining ? Outcome::shutdown : Outcome::bad_header;
  const bool between = s.framer.empty() && !s.unsent;
  if (draining) return between ? drained(s) : Outcome::shutdown;
  return between ? Outcome::idle_timeout : Outcome::io_timeout;
}

ParkDeadline park_deadline(const Session& s) {
  if (s.awaiting_proxy) return {s.idle_deadline};  // the header's deadline
  if (s.unsent) return {s.unsent->deadline};
  if (s.framer.empty()) return {s.idle_deadline};
  if (s.oneshot_due < s.request_deadline) return {s.oneshot_due, true};
  return {s.request_deadline};
}

void simulated_work(const SessionEnv& env) {
  const auto end = Clock::now() + env.config.delay;
  for (;;) {
    const auto until = capped(end, env);
    pollfd p{is_draining(env) ? -1 : env.stop_fd, POLLIN, 0};
    int rc = ::poll(&p, 1, poll_timeout_ms(until));
    if (rc == 0 || Clock::now() >= until) return;
    // rc > 0: the drain began; loop to re-cut. rc < 0: EINTR; loop.
  }
}

namespace {

// A new request's first bytes have just arrived.
void request_begins(Session& s, const SessionEnv& env) {
  s.request_started = s.last_byte;
  s.request_deadline = s.last_byte + env.config.io_timeout;
}

void count_received(Session& s, std::size_t n, const SessionEnv& env) {
  s.framer.commit(n);
  s.bytes_in += n;
  env.rec.received(n);
  s.last_byte = Clock::now();
  s.oneshot_due = Clock::time_point::max();
}

// The one-shot reply: no newline, then a graceful close. Written from where it is: an echoed
// request straight from the framer.
Verdict answer_one_shot(Session& s, const SessionEnv& env) {
  if (env.config.delay.count() > 0) simulated_work(env);
  const std::string_view reply =
      env.config.mode == Mode::echo ? s.framer.pending() : std::string_view(env.config.reply);
  auto v = write_out(s, reply, env);
  s.framer.clear();
  s.oneshot_due = Clock::time_point::max();
  if (v && v->kind == Verdict::Kind::close) return *v;
  replies_done(s, env, 1, true);
  if (v) {
    s.unsent->close_after = true;
    s.unsent->close_outcome = Outcome::served;
    return *v;
  }
  return close_with(Outcome::served, true);
}

// Reads into the framer. Returns the status; on ok the bytes are committed. The first byte of a
// request starts its io-timeout clock. A deadline already passed (kNoWait) is one non-blocking
// read. Once the end of the stream has been read, it is reported again without a read.
IoResult receive(Session& s, Clock::time_point deadline, int wake_fd, const SessionEnv& env,
                 std::size_t chunk = kReadChunk) {
  if (s.ended_ahead != IoStatus::ok) {
    const IoStatus st = std::exchange(s.ended_ahead, IoStatus::ok);
    s.input_ended = st == IoStatus::closed;
    return {st};
  }
  if (s.input_ended) return {IoStatus::closed};
  char* dst = s.framer.prepare(chunk);
  IoResult r = read_some(s.fd.get(), dst, chunk, deadline, wake_fd);
  s.read_full = r.status == IoStatus::ok && r.bytes == chunk;
  switch (r.status) {
    case IoStatus::ok:
      count_received(s, r.bytes, env);
      if (s.request_deadline == Clock::time_point::max()) request_begins(s, env);
      break;
    case IoStatus::closed: s.input_ended = true; break;
    case IoStatus::timed_out: s.hup_seen = false; break;  // nothing more is there now
    default: break;
  }
  return r;
}

}  // namespace

void finish(Session& s, Outcome outcome, const SessionEnv& env) {
  env.stats.ended(outcome);
  if (env.admission != nullptr) {
    env.admission->release(s);
    // Refusals are logged apart, at most a line a second each: a flood of them must not be
    // a flood of log lines.
    if (outcome == Outcome::bad_header || outcome == Outcome::denied ||
        outcome == Outcome::limited) {
      env.admission->log_refusal(outcome, s.peer, s.refusal);
      return;
    }
  }
  if (env.config.log_level < LogLevel::info) return;
  const std::string peer = s.peer.str();
  log_connection({peer, outcome_name(outcome), s.replies, s.bytes_in, s.bytes_out,
                  std::chrono::duration<double, std::milli>(Clock::now() - s.accepted).count()});
}

namespace {

// Answers every complete request received so far. Sets `answered` when it wrote any.
std::optional<Verdict> answer_ready(Session& s, const SessionEnv& env, std::string& out,
                                    bool& answered) {
  const ServerConfig& cfg = env.config;
  out.clear();
  Gathered b{out};
  const auto answered_so_far = [&s] { return s.replies + (s.unsent ? s.unsent->replies : 0); };
  const uint64_t before = answered_so_far();
  for (;;) {
    LineFramer::Next next = s.framer.next();
    if (next.status == LineFramer::Status::need_more) break;
    if (next.status == LineFramer::Status::too_long) return too_long(s, env, b);
    s.line_client = true;
    if (cfg.delay.count() > 0) simulated_work(env);
    const std::string_view reply = cfg.mode == Mode::echo ? next.line : cfg.reply;
    if (auto v = add_reply(s, env, b, reply)) {
      // Parked for room to write: the requests left start their clocks once it is out.
      s.request_started = Clock::now();
      s.request_deadline =
          s.framer.empty() ? Clock::time_point::max() : s.request_started + cfg.io_timeout;
      return v;
    }
  }
  auto v = flush(s, env, b);
  if (v && v->kind == Verdict::Kind::close) return v;
  if (answered_so_far() == before) {
    if (s.framer.empty()) s.request_deadline = Clock::time_point::max();
    return v;
  }
  answered = true;
  const auto now = b.counted != Clock::time_point{} ? b.counted : Clock::now();
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
  return v;
}

bool one_shot_rule(const Session& s, const SessionEnv& env) {
  return !s.line_client && env.config.oneshot_wait.count() > 0;
}

// The request in progress timed out: for a client that has not sent a newline yet that is the
// one-shot pause (or the drain cutting it short), otherwise a late request.
Verdict request_timed_out(Session& s, const SessionEnv& env) {
  if (one_shot_rule(s, env) && Clock::now() < s.request_deadline) return answer_one_shot(s, env);
  return close_with(outcome_of(IoStatus::timed_out, env));
}

// The client closed its side part-way through a request: that ends the request. A client that
// never sent a newline gets the one-shot reply; a line client gets a line.
std::optional<Verdict> request_ended_by_close(Session& s, const SessionEnv& env) {
  if (!s.line_client) return answer_one_shot(s, env);
  s.framer.append("\n");
  return std::nullopt;
}

// A request is arriving and its next bytes are not there yet: the session is parked with its
// partial request, keeping that request's deadline, so that a slow (or slow-loris) client holds
// no worker between its bytes. A client that has not sent a newline yet is parked until its
// one-shot reply is due (Session::oneshot_due), when a worker answers it.
std::optional<Verdict> continue_request(Session& s, const SessionEnv& env) {
  IoResult r = receive(s, kNoWait, -1, env);
  switch (r.status) {
    case IoStatus::ok: return std::nullopt;
    case IoStatus::closed: return request_ended_by_close(s, env);
    case IoStatus::timed_out: break;
    default: return close_with(outcome_of(r.status, env));
  }
  const auto now = Clock::now();
  if (now >= s.request_deadline) return request_timed_out(s, env);
  if (one_shot_rule(s, env)) {
    const auto due = s.last_byte + env.config.oneshot_wait;
    if (now >= due) return answer_one_shot(s, env);
    s.oneshot_due = due;
  }
  return Verdict{Verdict::Kind::park};
}

// The drain parks nothing: a request under way is waited for in place, bounded by the drain
// deadline.
std::optional<Verdict> continue_request_draining(Session& s, const SessionEnv& env) {
  auto until = s.request_deadline;
  if (one_shot_rule(s, env)) until = std::min(until, s.last_byte + env.config.oneshot_wait);
  IoResult r = receive(s, capped(until, env), -1, env);
  switch (r.status) {
    case IoStatus::ok:
    case IoStatus::woken: return std::nullopt;
    case IoStatus::closed: return request_ended_by_close(s, env);
    case IoStatus::timed_out: return request_timed_out(s, env);
    default: return close_with(outcome_of(r.status, env));
  }
}

// Between requests while the drain runs: serve what has already arrived, then close. A
// connection that has sent nothing yet gets kFirstRequestGrace from its accept.
std::optional<Verdict> drain_between_requests(Session& s, const SessionEnv& env) {
  if (s.input_ended) return close_with(peer_closed(s));
  auto until = Clock::now();
  if (s.replies == 0) until = std::max(until, capped(s.accepted + kFirstRequestGrace, env));
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
// nothing, unless more is known to wait: the last read filled its buffer (a pipelined burst),
// or the peer's close was reported with the event that handed the session out. Either way no
// further event would come for it. Otherwise (just taken from the queue or the parked set) its
// bytes are usually there.
std::optional<Verdict> next_request(Session& s, const SessionEnv& env, bool answered_this_turn) {
  if (s.input_ended) return close_with(peer_closed(s));
  if (answered_this_turn && !s.read_full && !s.hup_seen) return Verdict{Verdict::Kind::park};
  IoResult r = receive(s, kNoWait, -1, env);
  switch (r.status) {
    case IoStatus::ok: return std::nullopt;
    case IoStatus::timed_out: return Verdict{Verdict::Kind::park};
    case IoStatus::closed: return close_with(peer_closed(s));
    default: return close_with(between_requests(r.status, s, env));
  }
}

// The PROXY header's source becomes the client's address, and the rules are applied to it.
std::optional<Verdict> header_read(Session& s, const ProxyHeader& h, const SessionEnv& env) {
  s.framer.consume(h.length);
  s.awaiting_proxy = false;
  s.idle_deadline = Clock::now() + env.config.idle_timeout;
  s.request_deadline = Clock::time_point::max();
  if (!s.framer.empty()) request_begins(s, env);
  if (h.has_source) s.peer = h.source;
  if (env.admission == nullptr) return std::nullopt;
  switch (env.admission->admit(s)) {
    case Admission::Verdict::ok: return std::nullopt;
    case Admission::Verdict::denied: return close_with(Outcome::denied);
    case Admission::Verdict::limited:
      if (send_now(s.fd.get(), kErrBusy)) {
        s.bytes_out += kErrBusy.size();
        env.rec.sent(kErrBusy.size());
      }
      return close_with(Outcome::limited, true);
  }
  return std::nullopt;
}

// --proxy-protocol: nothing else is read until the whole header is here. Bytes that cannot begin
// a header, a malformed one, or none complete by --proxy-timeout-ms: closed, no reply.
std::optional<Verdict> read_proxy_header(Session& s, const SessionEnv& env) {
  for (;;) {
    const ProxyHeader h = parse_proxy_header(s.framer.pending());
    if (h.status == ProxyHeader::Status::done) return header_read(s, h, env);
    if (h.status == ProxyHeader::Status::bad) {
      s.refusal = h.why;
      return close_with(Outcome::bad_header);
    }
    const auto deadline = is_draining(env) ? capped(s.idle_deadline, env) : kNoWait;
    IoResult r = receive(s, deadline, -1, env);
    if (r.status == IoStatus::ok) continue;
    if (r.status != IoStatus::timed_out) return close_with(Outcome::bad_header);
    if (Clock::now() >= s.idle_deadline) return close_with(Outcome::bad_header);
    if (is_draining(env)) return close_with(Outcome::shutdown);
    return Verdict{Verdict::Kind::park};
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

// One named step per state: send what is unsent, answer what is complete, finish a request
// under way, or look for the next request (the drain gives it a moment instead of parking it).
// A turn that has read kTurnInput gives its worker back to the others.
Verdict serve(Session& s, const SessionEnv& env, std::string& out) {
  bool answered_this_turn = false;
  const uint64_t bytes_in_before = s.bytes_in;
  // A session that waited for room to write may have been sent more meanwhile, and the event for
  // those bytes was spent on a turn that could only try the write: read before parking it.
  const bool was_blocked = s.unsent != nullptr;
  if (s.awaiting_proxy) {
    if (auto v = read_proxy_header(s, env)) return *v;
  }
  if (auto v = send_unsent(s, env)) return *v;
  for (;;) {
    if (auto v = answer_ready(s, env, out, answered_this_turn)) return *v;
    if (s.bytes_in - bytes_in_before >= kTurnInput && !s.input_ended && !is_draining(env)) {
      return Verdict{Verdict::Kind::again};
    }
    std::optional<Verdict> v;
    if (!s.framer.empty()) {
      v = is_draining(env) ? continue_request_draining(s, env) : continue_request(s, env);
    } else if (is_draining(env)) {
      v = drain_between_requests(s, env);
    } else {
      v = next_request(s, env, answered_this_turn && !was_blocked);
    }
    if (v) return *v;
  }
}

}  // namespace tcpd

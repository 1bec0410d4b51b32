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

Outcome expired_outcome(const Session& s, bool draining) {
  const bool between = s.framer.empty() && !s.unsent;
  if (draining) return between ? drained(s) : Outcome::shutdown;
  return between ? Outcome::idle_timeout : Outcome::io_timeout;
}

ParkDeadline park_deadline(const Session& s) {
  if (s.unsent) return {s.unsent->deadline};
  if (s.framer.empty()) return {s.idle_deadline};
  if (s.oneshot_due < s.request_deadline) return {s.oneshot_due, true};
  return {s.request_deadline};
}

namespace {

// --delay-ms: simulated work. A drain shortens it to the drain deadline.
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

void count_sent(Session& s, std::size_t n, const SessionEnv& env) {
  s.bytes_out += n;
  env.stats.sent(n);
}

// During the drain a write that finds the socket full waits for room in place, bounded by the
// drain deadline: nothing may be parked any more.
IoResult write_in_place(Session& s, std::string_view out, const SessionEnv& env) {
  IoResult total{IoStatus::ok};
  for (;;) {
    const auto deadline = capped(Clock::now() + env.config.io_timeout, env);
    IoResult r = write_all(s.fd.get(), out, deadline, stop_wake(env));
    count_sent(s, r.bytes, env);
    total.bytes += r.bytes;
    if (r.status != IoStatus::woken) return {r.status, total.bytes, r.err};
    out.remove_prefix(r.bytes);
  }
}

// Writes `out`, or keeps what the socket has no room for in `unsent` (Verdict::park: the
// session waits for room without a worker, bounded by the io timeout). Once anything is unsent,
// later replies queue behind it.
std::optional<Verdict> write_out(Session& s, std::string_view out, const SessionEnv& env) {
  if (s.unsent) {
    s.unsent->bytes += out;
    return Verdict{Verdict::Kind::park};
  }
  IoResult r = write_all(s.fd.get(), out, kNoWait);
  count_sent(s, r.bytes, env);
  if (r.status == IoStatus::ok) return std::nullopt;
  if (r.status != IoStatus::timed_out) return close_with(outcome_of(r.status, env));
  out.remove_prefix(r.bytes);
  if (is_draining(env)) {
    r = write_in_place(s, out, env);
    if (r.status == IoStatus::ok) return std::nullopt;
    return close_with(outcome_of(r.status, env));
  }
  s.unsent = std::make_unique<Unsent>();
  s.unsent->bytes.assign(out);
  s.unsent->deadline = Clock::now() + env.config.io_timeout;
  return Verdict{Verdict::Kind::park};
}

Clock::time_point count_replies(Session& s, const SessionEnv& env, uint64_t n,
                                Clock::time_point started, bool one_shot) {
  const auto now = Clock::now();
  s.replies += n;
  env.stats.replies(n, started, now);
  if (one_shot) env.stats.one_shot();
  return now;
}

// Replies written to the socket are counted (returns when); those left unsent are counted once
// they are out (returns the epoch).
Clock::time_point replies_done(Session& s, const SessionEnv& env, uint64_t n,
                               bool one_shot = false) {
  if (!s.unsent) return count_replies(s, env, n, s.request_started, one_shot);
  Unsent& u = *s.unsent;
  if (u.replies == 0) u.started = s.request_started;
  u.replies += n;
  u.one_shot = u.one_shot || one_shot;
  return {};
}

// What was left unsent goes first, before anything else is read.
std::optional<Verdict> send_unsent(Session& s, const SessionEnv& env) {
  if (!s.unsent) return std::nullopt;
  Unsent& u = *s.unsent;
  const bool draining = is_draining(env);
  IoResult r = draining ? write_in_place(s, u.bytes, env) : write_all(s.fd.get(), u.bytes, kNoWait);
  if (!draining) count_sent(s, r.bytes, env);
  if (r.status == IoStatus::timed_out && !draining) {
    u.bytes.erase(0, r.bytes);
    if (Clock::now() >= u.deadline) return close_with(Outcome::io_timeout);
    return Verdict{Verdict::Kind::park};
  }
  if (r.status != IoStatus::ok) return close_with(outcome_of(r.status, env));
  const Unsent done = std::move(u);
  s.unsent.reset();
  s.idle_deadline = Clock::now() + env.config.idle_timeout;
  count_replies(s, env, done.replies, done.started, done.one_shot);
  if (done.close_after) return close_with(done.close_outcome, true);
  return std::nullopt;
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
  Clock::time_point counted{};  // when the last replies were counted: one clock read per write
};

// Writes the replies gathered and counts them once they are out.
std::optional<Verdict> flush(Session& s, const SessionEnv& env, Batch& b) {
  if (b.out.empty()) return std::nullopt;
  auto v = write_out(s, b.out, env);
  b.out.clear();
  if (v && v->kind == Verdict::Kind::close) return v;
  b.counted = replies_done(s, env, std::exchange(b.replies, 0));
  return v;
}

// Adds one reply, writing first whenever kReplyBuffer bytes would be exceeded; a reply longer
// than that is written on its own, from where it already is.
std::optional<Verdict> add_reply(Session& s, const SessionEnv& env, Batch& b,
                                 std::string_view reply) {
  if (b.out.size() + reply.size() + 1 > kReplyBuffer) {
    if (auto v = flush(s, env, b)) {
      if (v->kind == Verdict::Kind::close) return v;
      // The socket is full: this reply queues behind what it did not take.
      s.unsent->bytes.append(reply).push_back('\n');
      replies_done(s, env, 1);
      return v;
    }
  }
  if (reply.size() + 1 > kReplyBuffer) {
    auto v = write_out(s, reply, env);
    if (!v || v->kind == Verdict::Kind::park) v = write_out(s, "\n", env);
    if (v && v->kind == Verdict::Kind::close) return v;
    b.counted = replies_done(s, env, 1);
    return v;
  }
  b.out += reply;
  b.out += '\n';
  ++b.replies;
  return std::nullopt;
}

// A request too long: ERR too long after the replies before it, then a graceful close.
Verdict too_long(Session& s, const SessionEnv& env, Batch& b) {
  b.out += kErrTooLong;
  auto v = flush(s, env, b);
  if (v && v->kind == Verdict::Kind::park) {
    s.unsent->close_after = true;
    s.unsent->close_outcome = Outcome::too_long;
    return *v;
  }
  if (v) return *v;
  return close_with(Outcome::too_long, true);
}

// Answers every complete request received so far. Sets `answered` when it wrote any.
std::optional<Verdict> answer_ready(Session& s, const SessionEnv& env, std::string& out,
                                    bool& answered) {
  const ServerConfig& cfg = env.config;
  out.clear();
  Batch b{out};
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

#include <poll.h>

#include <utility>

#include "replies.hpp"

namespace tcpd {
namespace {

void count_sent(Session& s, std::size_t n, const SessionEnv& env) {
  s.bytes_out += n;
  env.rec.sent(n);
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

Clock::time_point count_replies(Session& s, const SessionEnv& env, uint64_t n,
                                Clock::time_point started, bool one_shot) {
  const auto now = Clock::now();
  s.replies += n;
  env.rec.replies(n, started, now);
  if (one_shot) env.rec.one_shot();
  return now;
}

}  // namespace

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

// Replies written to the socket are counted (returns when); those left unsent are counted once
// they are out (returns the epoch).
Clock::time_point replies_done(Session& s, const SessionEnv& env, uint64_t n, bool one_shot) {
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

// Writes the replies gathered and counts them once they are out.
std::optional<Verdict> flush(Session& s, const SessionEnv& env, Gathered& b) {
  if (b.out.empty()) return std::nullopt;
  auto v = write_out(s, b.out, env);
  b.out.clear();
  if (v && v->kind == Verdict::Kind::close) return v;
  b.counted = replies_done(s, env, std::exchange(b.replies, 0));
  return v;
}

// Adds one reply, writing first whenever kReplyBuffer bytes would be exceeded; a reply longer
// than that is written on its own, from where it already is.
std::optional<Verdict> add_reply(Session& s, const SessionEnv& env, Gathered& b,
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
Verdict too_long(Session& s, const SessionEnv& env, Gathered& b) {
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

}  // namespace tcpd

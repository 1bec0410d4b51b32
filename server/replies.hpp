#pragma once

// What serving a session shares between reading requests (session.cpp) and writing replies
// (replies.cpp): the drain's effect on every wait, how an I/O failure maps to an outcome, and
// the reply writer.

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "session.hpp"
#include "socket.hpp"

namespace tcpd {

// A deadline that has always passed: one non-blocking read, without reading the clock first.
inline constexpr Clock::time_point kNoWait = Clock::time_point::min();

inline bool is_draining(const SessionEnv& env) {
  return env.draining.load(std::memory_order_acquire);
}

// Every wait is cut short by the drain deadline once a drain has begun.
inline Clock::time_point capped(Clock::time_point t, const SessionEnv& env) {
  if (!is_draining(env)) return t;
  Clock::time_point d{Clock::duration{env.drain_deadline.load(std::memory_order_relaxed)}};
  return std::min(t, d);
}

// While not draining, the drain's start must interrupt a long wait so the wait can be re-cut.
inline int stop_wake(const SessionEnv& env) {
  return is_draining(env) ? -1 : env.stop_fd;
}

// The one mapping from an I/O failure to how the connection ended. Once the drain has begun,
// its deadline is what cut a wait short.
inline Outcome outcome_of(IoStatus st, const SessionEnv& env) {
  switch (st) {
    case IoStatus::timed_out: return is_draining(env) ? Outcome::shutdown : Outcome::io_timeout;
    case IoStatus::reset: return Outcome::reset;
    default: return Outcome::error;
  }
}

inline Verdict close_with(Outcome o, bool linger = false) {
  return {Verdict::Kind::close, o, linger};
}

// --delay-ms: simulated work. A drain shortens it to the drain deadline.
void simulated_work(const SessionEnv& env);

// Writes `out`, or keeps what the socket has no room for in Session::unsent (Verdict::park: the
// session waits for room without a worker, bounded by the io timeout). Once anything is unsent,
// later replies queue behind it.
std::optional<Verdict> write_out(Session& s, std::string_view out, const SessionEnv& env);
// `n` replies are done: counted now if written (returns when), or once what is unsent is out
// (returns the epoch).
Clock::time_point replies_done(Session& s, const SessionEnv& env, uint64_t n,
                               bool one_shot = false);
// What was left unsent goes first, before anything else is read.
std::optional<Verdict> send_unsent(Session& s, const SessionEnv& env);

// The replies gathered in one turn, not written yet.
struct Gathered {
  std::string& out;
  uint64_t replies = 0;
  Clock::time_point counted{};  // when the last replies were counted: one clock read per write
};
// Writes the replies gathered and counts them once they are out.
std::optional<Verdict> flush(Session& s, const SessionEnv& env, Gathered& b);
// Adds one reply, writing first whenever kReplyBuffer bytes would be exceeded.
std::optional<Verdict> add_reply(Session& s, const SessionEnv& env, Gathered& b,
                                 std::string_view reply);
// A request too long: ERR too long after the replies before it, then a graceful close.
Verdict too_long(Session& s, const SessionEnv& env, Gathered& b);

}  // namespace tcpd

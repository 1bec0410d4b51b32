#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <unordered_map>
#include <utility>
#include <vector>

#include "clock.hpp"
#include "fd.hpp"
#include "session.hpp"

namespace tcpd {

// How long a connection the server closed after its last reply may drain the client's input.
// Closing with unread input makes the kernel send RST, which can destroy the reply in the
// client's receive buffer before the client reads it.
inline constexpr Millis kLingerClose{2000};
inline constexpr std::size_t kMaxLingering = 4096;
// A rejected connection's linger ends once its client has been silent this long.
inline constexpr Millis kRejectQuiet{100};

// Connections that hold no thread: sessions waiting for their client's next bytes (idle between
// requests, part-way through a slow request, or new and silent) and closing connections
// waiting for the client's FIN. One epoll set: each descriptor is registered once, with
// EPOLLONESHOT, so that an event hands its session to exactly one thread; one timerfd in the same
// set carries every deadline. Threads take ready sessions with wait(); the timer and the
// lingering closes are dealt with inside it, by whichever thread gets their event.
class Parked {
 public:
  // Where a session is registered: `keep_registered` leaves its descriptor in the set when it
  // is taken (the workers' set, where it comes back after each request: a re-arm instead of a
  // registration); otherwise it is removed (the acceptor's set of new connections, which pass
  // through once). `trim_when_quiet`: this set's timer also returns freed memory to the system.
  Parked(const SessionEnv& env, bool keep_registered, bool trim_when_quiet);
  Parked(const Parked&) = delete;
  Parked& operator=(const Parked&) = delete;

  // An outside descriptor (an eventfd, the listener): wait() returns `tag` (>= kFirstTag) while
  // it is readable, or once per wake-up when `edge`.
  static constexpr uint64_t kFirstTag = uint64_t{1} << 32;
  void watch(int fd, uint64_t tag, bool edge);

  // Holds `s` until its client sends something (wait() returns it) or its deadline passes (it
  // is closed: the idle deadline, or the pending request's). False, with `s` untouched, once
  // the drain has begun (begin_drain) or when the kernel refuses the registration.
  bool park(Session& s);

  // Graceful close: the write side is shut down already or now; input is discarded until the
  // peer closes, or has sent nothing for `quiet`, or kLingerClose passes. Closes at once when
  // too many linger. Rejections use a short `quiet`: all they need is that the client is not
  // sending when the socket closes (unread input makes the kernel send RST), and out of
  // descriptors each one holds the descriptor the next rejection needs.
  void linger(Fd fd, bool registered, Millis quiet = kLingerClose);
  // Turns a connection away: ERR busy (its socket is fresh, so this never blocks), counted as
  // `why`, then a linger ended by kRejectQuiet of silence.
  void reject(Session& s, Outcome why);

  struct Woken {
    std::optional<Session> session;  // its client has sent something (or closed)
    uint64_t tag = 0;                // a watched descriptor is readable
    bool timed_out = false;          // nothing happened
  };
  // Waits up to `timeout_ms` (-1: no limit) for one event. Empty when it was the timer's or a
  // lingering close's (handled here), or on timeout.
  Woken wait(int timeout_ms);

  // The drain: idle sessions that have been answered close now (counted as served); those with
  // input waiting stay until a thread takes them; the rest (new ones that have sent nothing,
  // requests part-way in) keep waiting, at most until `deadline` (one that has sent nothing,
  // kFirstRequestGrace from its accept). park() refuses from now on.
  void begin_drain(Clock::time_point deadline);
  // Every parked session, handed to the caller (the acceptor's drain).
  std::vector<Session> take_all();

  [[nodiscard]] std::size_t sessions() const;

 private:
  struct Entry {
    std::optional<Session> session;  // empty for a lingering close
    Fd fd;                           // lingering close only
    Clock::time_point deadline;
    Millis quiet{};                  // lingering close: the silence that ends it
    Clock::time_point linger_cap{};  // lingering close: kLingerClose after it began
  };

  bool add(int fd, Entry& entry, bool registered);  // mu_ held; moves from `entry` on success
  Entry take(int fd);                               // mu_ held
  void set_deadline(int fd, Entry& e, Clock::time_point deadline);  // mu_ held
  void arm(Clock::time_point t);                                    // mu_ held
  void on_timer();
  void on_lingering(int fd);
  bool trim_due(Clock::time_point now);  // mu_ held
  void expired(std::vector<Entry>& entries);

  const SessionEnv& env_;
  const bool keep_registered_;
  const bool trim_when_quiet_;
  Fd epoll_;
  Fd timer_;
  mutable std::mutex mu_;
  std::unordered_map<int, Entry> entries_;
  std::set<std::pair<Clock::time_point, int>> deadlines_;
  std::size_t sessions_ = 0;
  std::size_t lingering_ = 0;
  Clock::time_point armed_ = Clock::time_point::max();
  bool draining_ = false;
  // Quiet-time trimming: see trim_due().
  bool trim_pending_ = false;
  uint64_t seen_accepted_ = 0;
  uint64_t events_ = 0;
  uint64_t seen_events_ = 0;
};

}  // namespace tcpd

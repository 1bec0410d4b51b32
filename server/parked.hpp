#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "clock.hpp"
#include "deadline_queue.hpp"
#include "event_core.hpp"
#include "fd.hpp"
#include "session.hpp"
#include "tuning.hpp"

struct epoll_event;

namespace tcpd {

// Connections that hold no thread: sessions waiting for their client's next bytes (idle between
// requests, part-way through a slow request, or new and silent) and closing connections
// waiting for the client's FIN. One epoll set; one timerfd in it carries every deadline. Threads
// take ready sessions with wait(); the timer and the lingering closes are dealt with inside it,
// by whichever thread gets their event.
//
// The workers' set (`keep_registered`) registers a session's descriptor once, edge-triggered,
// and never touches the registration again: a session goes back and forth between it and the
// workers at no cost in system calls. Its entry outlives each visit, so an edge that comes while
// a worker has the session (the client sent again) is kept there, and park() answers `ready`
// instead of parking. The acceptor's set (new connections, which pass through once) registers
// with EPOLLONESHOT and removes the descriptor when it is taken. Either way an event hands a
// session to exactly one thread. Deadlines are kept lazily: a session's index entry is only
// moved when its deadline comes earlier; when an index entry falls due and the session's real
// deadline is later, it is filed again then (once per idle timeout for a busy session).
class Parked {
 public:
  // `trim_when_quiet`: this set's timer also returns freed memory to the system.
  Parked(const SessionEnv& env, bool keep_registered, bool trim_when_quiet);
  Parked(const Parked&) = delete;
  Parked& operator=(const Parked&) = delete;

  // An outside descriptor (an eventfd, the listener): wait() returns `tag` (>= kFirstTag) while
  // it is readable, or once per wake-up when `edge`.
  static constexpr uint64_t kFirstTag = uint64_t{1} << 32;
  void watch(int fd, uint64_t tag, bool edge);

  // Holds `s` until its client sends something, or its socket has room for the replies it has
  // not sent yet (wait() returns it), or its deadline passes (park_deadline(): it is closed, or
  // handed to a worker when its one-shot reply is due): `parked`. `ready`, with `s`
  // untouched: its client sent something while a thread had it (serve it again). `refused`,
  // with `s` untouched: the drain has begun (begin_drain), or the kernel refused the
  // registration.
  enum class Park { parked, ready, refused };
  Park park(Session& s);
  // A session registered here closes without coming back: called before its descriptor closes,
  // so that the number's next owner starts afresh.
  void forget(int fd);

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
  // lingering close's (handled here), or on timeout. The workers' set takes up to kEventsPerWait
  // events per epoll_wait() and keeps the rest, in order, for the next calls from any thread: a
  // worker back from a request then finds the next ready session without a system call.
  Woken wait(int timeout_ms);
  // Only what an earlier epoll_wait() kept (timed out when none): for a thread that knows another
  // is asleep in epoll_wait() on this set, which the kernel wakes for any new event anyway.
  Woken take_kept();
  // Events taken from the kernel and not handed out yet: no epoll_wait() will report them
  // again, so a thread about to sleep inside a request must see that someone hands them out
  // (WorkQueue::lend_lead).
  [[nodiscard]] bool has_kept() const { return core_.has_kept(); }

  // The drain: idle sessions that have been answered close now (counted as served, whether or
  // not their client has closed its side); those with input waiting are handed out (wait()
  // returns them; true when there are any, so that the caller wakes a thread for them); the rest
  // (new ones that have sent nothing, requests part-way in, replies not sent yet) keep waiting,
  // at most until `deadline` (one that has sent nothing, kFirstRequestGrace from its accept).
  // park() refuses from now on.
  bool begin_drain(Clock::time_point deadline);
  // Every parked session, handed to the caller (the acceptor's drain).
  std::vector<Session> take_all();

  [[nodiscard]] std::size_t sessions() const;
  // Keys in the deadline index, stale ones included (bounded: see compact()).
  [[nodiscard]] std::size_t deadline_keys() const;

 private:
  // One per registered descriptor (workers' set: from its registration until it closes).
  struct Entry {
    std::optional<Session> session;  // parked
    Fd fd;                           // a lingering close
    bool ready = false;              // an edge came while a thread had the session
    Clock::time_point deadline{};
    bool wakes = false;  // the deadline hands the session out instead of closing it
    Clock::time_point indexed = Clock::time_point::max();  // its key in deadlines_; max: none
    Millis quiet{};                  // lingering close: the silence that ends it
    Clock::time_point linger_cap{};  // lingering close: kLingerClose after it began
  };
  // mu_ held for all of these.
  Entry* enter(int fd, bool registered, uint32_t events, bool modify = false);
  Entry take(std::unordered_map<int, Entry>::iterator it, bool closing);
  void index(int fd, Entry& e);
  void set_deadline(int fd, Entry& e, Clock::time_point deadline);
  void note_parked();
  void on_timer();
  bool keep_lingering(int raw, Fd& fd, bool registered, Millis quiet, Clock::time_point cap);
  void on_lingering(int fd);
  Woken on_event(EventCore::Event e);
  bool trim_due(Clock::time_point now);  // mu_ held
  void expired(std::vector<Entry>& entries);

  const SessionEnv& env_;
  const bool keep_registered_;
  const bool trim_when_quiet_;
  // The protocol-free parts: the epoll set with its kept events, and the deadlines (under mu_;
  // an entry's `indexed` tells its live key).
  EventCore core_;
  DeadlineQueue deadlines_;
  mutable std::mutex mu_;
  std::unordered_map<int, Entry> entries_;
  std::size_t sessions_ = 0;
  std::size_t lingering_ = 0;
  bool draining_ = false;
  // Quiet-time trimming: see trim_due().
  bool trim_pending_ = false;
  uint64_t seen_accepted_ = 0;
  uint64_t events_ = 0;
  uint64_t seen_events_ = 0;
};

}  // namespace tcpd

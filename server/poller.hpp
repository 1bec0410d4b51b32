#pragma once

#include <sys/epoll.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "clock.hpp"
#include "fd.hpp"
#include "session.hpp"
#include "work_queue.hpp"

namespace tcpd {

// How long a connection the server closed after its last reply may drain the client's input.
// Closing with unread input makes the kernel send RST, which can destroy the reply in the
// client's receive buffer before the client reads it.
inline constexpr Millis kLingerClose{2000};
inline constexpr std::size_t kMaxLingering = 4096;
// A rejected connection's linger ends once its client has been silent this long.
inline constexpr Millis kRejectQuiet{100};

// The one thread that watches sessions holding no worker: idle sessions parked by workers
// (queued again when readable, closed at their idle deadline) and closing connections waiting
// for the client's FIN. It never serves a request.
class Poller {
 public:
  Poller(WorkQueue<Session>& queue, const SessionEnv& env, Waker& waker);
  ~Poller();
  Poller(const Poller&) = delete;
  Poller& operator=(const Poller&) = delete;

  void start();
  // Takes a session that is waiting for its client's bytes: idle between requests (until its
  // idle deadline), or in the middle of a request (until that request's deadline). Once stopped
  // it refuses, and hands the session back.
  std::optional<Session> park(Session s);
  // Takes a new connection the full work queue could not: the queue bounds work waiting for a
  // worker, and a connection that has sent nothing is not work yet. Its first bytes queue it
  // within the bound, or get it ERR busy then. Refuses (hands it back) like park().
  std::optional<Session> park_new(Session s);
  // Graceful close: the write side is shut down already or now; input is discarded until the
  // peer closes, or has sent nothing for `quiet`, or kLingerClose passes. Closes at once when
  // stopped or too many linger. Rejections use a short `quiet`: all they need is that the
  // client is not sending when the socket closes (unread input makes the kernel send RST), and
  // out of descriptors each one holds the descriptor the next rejection needs.
  void linger(Fd fd, Millis quiet = kLingerClose);
  // Turns a connection away: ERR busy (its socket is fresh, so this never blocks), counted as
  // `why`, then a graceful close ended by kRejectQuiet of silence: closing with the client's
  // bytes unread would reset the connection and could destroy "ERR busy" before it is read.
  void reject(Session& s, Outcome why);
  // Queues the parked sessions that have input waiting, closes the rest (counted as shutdown)
  // and every lingering connection, and joins the thread.
  void stop();

  [[nodiscard]] std::size_t parked() const;
  // Wakes the poller so that it re-kicks workers blocked in recv() while the queue is
  // backlogged (see Waker: a kick can be lost).
  void nudge();

 private:
  struct Entry {
    std::optional<Session> session;  // empty for a lingering close
    bool never_queued = false;       // park_new: goes back through the queue's bound
    Fd fd;                           // lingering close only
    Clock::time_point deadline;
    Millis quiet{};                  // lingering close: the silence that ends it
    Clock::time_point linger_cap{};  // lingering close: kLingerClose after it began
  };

  void run();
  bool run_once(std::array<epoll_event, 128>& events, bool& active);
  void hand_off();
  int trim_when_quiet(bool active, int timeout);
  bool add(int fd, Entry& entry);  // mu_ held; moves from `entry` only on success
  Entry take(int fd);              // mu_ held
  void extend_linger(int fd);      // mu_ held
  void expire(Clock::time_point now, std::vector<Session>& timed_out);  // mu_ held

  WorkQueue<Session>& queue_;
  const SessionEnv& env_;
  Waker& waker_;
  Fd epoll_;
  Fd wake_;
  mutable std::mutex mu_;
  std::unordered_map<int, Entry> entries_;
  std::set<std::pair<Clock::time_point, int>> deadlines_;
  std::size_t parked_ = 0;
  std::size_t lingering_ = 0;
  Clock::time_point next_wake_ = Clock::time_point::max();
  bool stopping_ = false;
  std::optional<Session> park_entry(Session s, bool never_queued);

  std::vector<Session> ready_;      // poller thread only
  std::vector<Session> ready_new_;  // poller thread only: ready, from park_new
  std::vector<Session> timed_out_;  // poller thread only
  uint64_t seen_accepted_ = 0;
  Clock::time_point last_activity_{};
  bool trim_pending_ = false;
  std::thread thread_;
};

}  // namespace tcpd

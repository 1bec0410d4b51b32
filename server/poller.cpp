#include "poller.hpp"

#include <malloc.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <system_error>

#include "eventfd.hpp"
#include "log.hpp"
#include "socket.hpp"

namespace tcpd {

namespace {
// Input a lingering close throws away per wake-up, so one chatty peer cannot hog the poller.
constexpr std::size_t kDiscardPerEvent = std::size_t{64} * 1024;
// After this long with no new connection and nothing for the poller, the server is quiet.
constexpr Millis kQuietAfter{1000};
}  // namespace

Poller::Poller(WorkQueue<Session>& queue, const SessionEnv& env, Waker& waker)
    : queue_(queue),
      env_(env),
      waker_(waker),
      epoll_(::epoll_create1(EPOLL_CLOEXEC)),
      wake_(make_eventfd()) {
  if (!epoll_) throw std::system_error(errno, std::generic_category(), "epoll_create1");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = wake_.get();
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &ev) != 0) {
    throw std::system_error(errno, std::generic_category(), "epoll_ctl");
  }
}

Poller::~Poller() {
  stop();
}

void Poller::start() {
  thread_ = std::thread([this] { run(); });
}

bool Poller::add(int fd, Entry& entry) {
  const auto deadline = entry.deadline;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP;
  ev.data.fd = fd;
  // Fails only for ENOMEM/ENOSPC (max_user_watches); `entry` is then left to the caller.
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) return false;
  entries_.emplace(fd, std::move(entry));
  deadlines_.emplace(deadline, fd);
  if (deadline < next_wake_) {
    // The poller sleeps until an earlier deadline than this one, or forever: wake it to re-plan.
    raise_eventfd(wake_.get());
    next_wake_ = deadline;
  }
  return true;
}

Poller::Entry Poller::take(int fd) {
  auto it = entries_.find(fd);
  Entry e = std::move(it->second);
  entries_.erase(it);
  deadlines_.erase({e.deadline, fd});
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
  if (e.session)
    --parked_;
  else
    --lingering_;
  return e;
}

std::optional<Session> Poller::park(Session s) {
  return park_entry(std::move(s), false);
}

std::optional<Session> Poller::park_new(Session s) {
  return park_entry(std::move(s), true);
}

std::optional<Session> Poller::park_entry(Session s, bool never_queued) {
  std::lock_guard lock(mu_);
  if (stopping_) return s;
  // An idle session keeps no buffer: a parked connection costs only its Session and two index
  // entries. A partial request keeps its bytes (bounded by --max-message).
  s.framer.release_if_empty();
  const int fd = s.fd.get();
  const auto deadline = s.framer.empty() ? s.idle_deadline : s.request_deadline;
  Entry e{std::move(s), never_queued, Fd{}, deadline, {}, {}};
  if (!add(fd, e)) return std::move(e.session);
  ++parked_;
  return std::nullopt;
}

void Poller::reject(Session& s, Outcome why) {
  if (send_now(s.fd.get(), kErrBusy)) {
    s.bytes_out = kErrBusy.size();
    env_.stats.sent(kErrBusy.size());
  }
  finish(s, why, env_);
  linger(std::move(s.fd), kRejectQuiet);
}

void Poller::linger(Fd fd, Millis quiet) {
  ::shutdown(fd.get(), SHUT_WR);
  // Whatever has arrived already goes now; most clients have closed by the next event.
  if (!discard_input(fd.get(), kDiscardPerEvent)) return;
  std::lock_guard lock(mu_);
  if (stopping_ || lingering_ >= kMaxLingering) return;
  const int raw = fd.get();
  const auto now = Clock::now();
  Entry e{std::nullopt,      false, std::move(fd), std::min(now + kLingerClose, now + quiet), quiet,
          now + kLingerClose};
  if (add(raw, e)) ++lingering_;
}

void Poller::extend_linger(int fd) {
  auto& e = entries_.at(fd);
  const auto deadline = std::min(e.linger_cap, Clock::now() + e.quiet);
  if (deadline == e.deadline) return;
  deadlines_.erase({e.deadline, fd});
  e.deadline = deadline;
  deadlines_.emplace(deadline, fd);
}

void Poller::nudge() {
  raise_eventfd(wake_.get());
}

std::size_t Poller::parked() const {
  std::lock_guard lock(mu_);
  return parked_;
}

void Poller::expire(Clock::time_point now, std::vector<Session>& timed_out) {
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    Entry e = take(deadlines_.begin()->second);
    if (e.session) timed_out.push_back(std::move(*e.session));
  }
}

// Gives memory freed after a burst back to the system once the server has been quiet for
// kQuietAfter: glibc keeps freed heap in its arenas, so without this the resident size stays
// at the burst's peak (14 -> 44 MB after bursts of 5,000 keep-alive clients, 160 KB live).
int Poller::trim_when_quiet(bool active, int timeout) {
  const auto now = Clock::now();
  const uint64_t accepted = env_.stats.accepted_count();
  if (active || accepted != seen_accepted_) {
    seen_accepted_ = accepted;
    last_activity_ = now;
    trim_pending_ = true;
  }
  if (!trim_pending_) return timeout;
  if (now - last_activity_ >= kQuietAfter) {
    ::malloc_trim(0);
    trim_pending_ = false;
    return timeout;
  }
  const int left = poll_timeout_ms(last_activity_ + kQuietAfter, now);
  return timeout < 0 ? left : std::min(timeout, left);
}

// Outside the lock: ready sessions to the workers (those never queued through the queue's
// bound), and sessions whose deadline passed closed.
void Poller::hand_off() {
  const auto now = Clock::now();
  for (auto& s : ready_) {
    s.queued = now;
    queue_.push(s);
  }
  ready_.clear();
  for (auto& s : ready_new_) {
    s.queued = now;
    if (!queue_.try_push(s)) reject(s, Outcome::busy);
  }
  ready_new_.clear();
  // Parked in the middle of a request, the deadline that passed was that request's.
  for (auto& s : timed_out_) {
    finish(s, s.framer.empty() ? Outcome::idle_timeout : Outcome::io_timeout, env_);
  }
  timed_out_.clear();  // closes them
}

// One round: wait for events or the next deadline, queue sessions whose client has sent
// something, finish lingering closes, expire deadlines. Returns false once stopping.
bool Poller::run_once(std::array<epoll_event, 128>& events, bool& active) {
  int timeout = -1;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return false;
    next_wake_ = deadlines_.empty() ? Clock::time_point::max() : deadlines_.begin()->first;
    timeout = poll_timeout_ms(next_wake_);
  }
  timeout = trim_when_quiet(active, timeout);
  // Someone is owed a worker while a worker still sleeps in recv(): its kick may have been
  // lost. Kick again, and look again in a millisecond.
  if (queue_.backlogged() && waker_.kick_waiting(1) > 0)
    timeout = timeout < 0 ? 1 : std::min(timeout, 1);
  int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), timeout);
  active = n > 0;
  if (n < 0) {
    if (errno != EINTR) log_at(LogLevel::error, "poller: epoll_wait: {}", std::strerror(errno));
    return true;
  }
  {
    std::lock_guard lock(mu_);
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == wake_.get()) {
        uint64_t v;
        [[maybe_unused]] auto rc = ::read(fd, &v, sizeof v);
        continue;
      }
      auto it = entries_.find(fd);
      if (it == entries_.end()) continue;
      if (it->second.session) {
        Entry e = take(fd);
        (e.never_queued ? ready_new_ : ready_).push_back(std::move(*e.session));
      } else if (!discard_input(fd, kDiscardPerEvent)) {
        take(fd);  // the peer closed: the lingering close is complete
      } else if (it->second.quiet < kLingerClose) {
        extend_linger(fd);  // still sending: its quiet period starts again
      }
    }
    expire(Clock::now(), timed_out_);
  }
  hand_off();
  return true;
}

void Poller::run() {
  std::array<epoll_event, 128> events{};
  bool active = false;
  for (;;) {
    try {
      if (!run_once(events, active)) break;
    } catch (const std::exception& e) {
      // Out of memory for a moment: the sessions involved close as their Fd unwinds; the
      // poller goes on.
      log_at(LogLevel::error, "poller: {}", e.what());
      ready_.clear();
      ready_new_.clear();
      timed_out_.clear();
      std::this_thread::sleep_for(Millis{10});
    }
  }

  // Stopping: a parked session with input waiting has a request already received; it goes to
  // the workers, which are still draining. The others close now.
  std::lock_guard lock(mu_);
  for (;;) {
    int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), 0);
    int taken = 0;
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      auto it = entries_.find(fd);
      if (it == entries_.end() || !it->second.session) continue;
      Entry e = take(fd);
      e.session->queued = Clock::now();
      queue_.push(*e.session);
      ++taken;
    }
    if (taken == 0) break;
  }
  // A connection that has sent nothing yet goes to the workers too: its client connected
  // before the drain and may be about to send (the workers give it kFirstRequestGrace from its
  // accept). Closing it now would reset a request that arrives a moment later. So does a
  // request that was part-way in: the workers wait for its rest until the drain deadline.
  while (!entries_.empty()) {
    Entry e = take(entries_.begin()->first);
    if (!e.session) continue;
    if (e.session->replies == 0 || !e.session->framer.empty()) {
      e.session->queued = Clock::now();
      queue_.push(*e.session);
    } else {
      finish(*e.session, drained(*e.session), env_);
    }
  }
}

void Poller::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    raise_eventfd(wake_.get());
  }
  if (thread_.joinable()) thread_.join();
}

}  // namespace tcpd

#include "parked.hpp"

#include <malloc.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include "log.hpp"
#include "socket.hpp"

namespace tcpd {
namespace {

// Input a lingering close throws away per event, so one chatty peer cannot hog a thread.
constexpr std::size_t kDiscardPerEvent = std::size_t{64} * 1024;
// After this long with no new connection and no event, the server is quiet.
constexpr Millis kQuietAfter{1000};
constexpr uint64_t kTimerTag = Parked::kFirstTag - 1;

bool has_input(int fd) {
  char c;
  return ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) >= 0;  // bytes, or the peer's FIN
}

Fd checked(int fd, const char* what) {
  if (fd < 0) throw std::system_error(errno, std::generic_category(), what);
  return Fd(fd);
}

}  // namespace

Parked::Parked(const SessionEnv& env, bool keep_registered, bool trim_when_quiet)
    : env_(env),
      keep_registered_(keep_registered),
      trim_when_quiet_(trim_when_quiet),
      epoll_(checked(::epoll_create1(EPOLL_CLOEXEC), "epoll_create1")),
      timer_(checked(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC),
                     "timerfd_create")) {
  watch(timer_.get(), kTimerTag, true);
}

void Parked::watch(int fd, uint64_t tag, bool edge) {
  epoll_event ev{};
  ev.events = EPOLLIN | (edge ? EPOLLET : 0U);
  ev.data.u64 = tag;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
    throw std::system_error(errno, std::generic_category(), "epoll_ctl");
  }
}

// The timer is armed for the earliest deadline, or earlier: an entry taken before its deadline
// leaves the timer where it was, and the early expiry re-arms it. Only a deadline earlier than
// the armed one costs a timerfd_settime() here.
void Parked::arm(Clock::time_point t) {
  if (t >= armed_) return;
  armed_ = t;
  itimerspec its{};
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch());
  // steady_clock is CLOCK_MONOTONIC; a zero it_value would disarm.
  const auto total = std::max<int64_t>(ns.count(), 1);
  its.it_value.tv_sec = total / 1000000000;
  its.it_value.tv_nsec = total % 1000000000;
  ::timerfd_settime(timer_.get(), TFD_TIMER_ABSTIME, &its, nullptr);
}

bool Parked::add(int fd, Entry& entry, bool registered) {
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
  ev.data.u64 = static_cast<uint64_t>(fd);
  const auto deadline = entry.deadline;
  auto [it, inserted] = entries_.emplace(fd, std::move(entry));
  if (!inserted) return false;  // cannot happen: one owner per descriptor
  // Registered (or re-armed) once in the map: the event's thread must find it there.
  const int op = registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  // Fails only for ENOMEM/ENOSPC (max_user_watches); the entry goes back to the caller.
  if (::epoll_ctl(epoll_.get(), op, fd, &ev) != 0) {
    entry = std::move(it->second);
    entries_.erase(it);
    return false;
  }
  deadlines_.emplace(deadline, fd);
  if (trim_when_quiet_ && !trim_pending_) {
    trim_pending_ = true;
    arm(Clock::now() + kQuietAfter);
  }
  arm(deadline);
  return true;
}

Parked::Entry Parked::take(int fd) {
  auto it = entries_.find(fd);
  Entry e = std::move(it->second);
  entries_.erase(it);
  deadlines_.erase({e.deadline, fd});
  if (!keep_registered_) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
  if (e.session) {
    --sessions_;
  } else {
    --lingering_;
  }
  return e;
}

void Parked::set_deadline(int fd, Entry& e, Clock::time_point deadline) {
  if (deadline == e.deadline) return;
  deadlines_.erase({e.deadline, fd});
  e.deadline = deadline;
  deadlines_.emplace(deadline, fd);
  arm(deadline);
}

bool Parked::park(Session& s) {
  std::lock_guard lock(mu_);
  if (draining_) return false;
  // An idle session keeps no buffer: a parked connection costs only its Session and two index
  // entries. A partial request keeps its bytes (bounded by --max-message).
  s.framer.release_if_empty();
  const int fd = s.fd.get();
  const auto deadline = s.framer.empty() ? s.idle_deadline : s.request_deadline;
  const bool registered = keep_registered_ && s.registered;
  Entry e{std::move(s), Fd{}, deadline, {}, {}};
  if (!add(fd, e, registered)) {
    s = std::move(*e.session);
    return false;
  }
  if (keep_registered_) entries_.at(fd).session->registered = true;
  ++sessions_;
  return true;
}

void Parked::reject(Session& s, Outcome why) {
  if (send_now(s.fd.get(), kErrBusy)) {
    s.bytes_out = kErrBusy.size();
    env_.stats.sent(kErrBusy.size());
  }
  finish(s, why, env_);
  linger(std::move(s.fd), s.registered && keep_registered_, kRejectQuiet);
}

void Parked::linger(Fd fd, bool registered, Millis quiet) {
  ::shutdown(fd.get(), SHUT_WR);
  // Whatever has arrived already goes now; most clients have closed by the next event.
  if (!discard_input(fd.get(), kDiscardPerEvent)) return;
  std::lock_guard lock(mu_);
  if (lingering_ >= kMaxLingering) return;
  const int raw = fd.get();
  const auto now = Clock::now();
  Entry e{std::nullopt, std::move(fd), std::min(now + kLingerClose, now + quiet), quiet,
          now + kLingerClose};
  if (add(raw, e, registered)) ++lingering_;
}

// A lingering close's event: discard what came; done once the peer has closed, else it waits
// again (a rejection's quiet period starts again).
void Parked::on_lingering(int fd) {
  Entry e;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(fd);
    if (it == entries_.end() || it->second.session) return;
    e = take(fd);
  }
  if (!discard_input(fd, kDiscardPerEvent)) return;  // the peer closed: e.fd closes now
  std::lock_guard lock(mu_);
  e.deadline = std::min(e.linger_cap, Clock::now() + e.quiet);
  if (add(fd, e, keep_registered_)) ++lingering_;
}

Parked::Woken Parked::wait(int timeout_ms) {
  epoll_event ev{};
  const int n = ::epoll_wait(epoll_.get(), &ev, 1, timeout_ms);
  if (n <= 0) {
    if (n < 0 && errno != EINTR) log_at(LogLevel::error, "epoll_wait: {}", std::strerror(errno));
    return {std::nullopt, 0, true};
  }
  const uint64_t key = ev.data.u64;
  if (key == kTimerTag) {
    on_timer();
    return {};
  }
  if (key >= kFirstTag) return {std::nullopt, key, false};
  const int fd = static_cast<int>(key);
  std::unique_lock lock(mu_);
  ++events_;
  auto it = entries_.find(fd);
  // Already taken (its deadline passed, or the drain) and maybe reused: nothing to do.
  if (it == entries_.end()) return {};
  if (!it->second.session) {
    lock.unlock();
    on_lingering(fd);
    return {};
  }
  Entry e = take(fd);
  return {std::move(e.session), 0, false};
}

// Gives memory freed after a burst back to the system once the server has been quiet for
// kQuietAfter: glibc keeps freed heap in its arenas, so without this the resident size stays
// at the burst's peak (14 -> 44 MB after bursts of 5,000 keep-alive clients, 160 KB live).
// Checked once per kQuietAfter while pending: quiet = no new connection and no event since.
bool Parked::trim_due(Clock::time_point now) {
  if (!trim_when_quiet_ || !trim_pending_) return false;
  const uint64_t accepted = env_.stats.accepted_count();
  if (accepted == seen_accepted_ && events_ == seen_events_) {
    trim_pending_ = false;
    return true;
  }
  seen_accepted_ = accepted;
  seen_events_ = events_;
  arm(now + kQuietAfter);
  return false;
}

void Parked::on_timer() {
  uint64_t ticks;
  [[maybe_unused]] auto rc = ::read(timer_.get(), &ticks, sizeof ticks);
  std::vector<Entry> expired_entries;
  bool trim = false;
  {
    std::lock_guard lock(mu_);
    const auto now = Clock::now();
    while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
      expired_entries.push_back(take(deadlines_.begin()->second));
    }
    armed_ = Clock::time_point::max();  // fired: re-arm from scratch
    trim = trim_due(now);
    if (!deadlines_.empty()) arm(deadlines_.begin()->first);
  }
  expired(expired_entries);
  if (trim) ::malloc_trim(0);
}

// A session whose deadline passed: idle, its idle timeout; part-way through a request, that
// request's timeout; once the drain has begun, the drain ended it.
void Parked::expired(std::vector<Entry>& entries) {
  const bool draining = env_.draining.load(std::memory_order_acquire);
  for (auto& e : entries) {
    if (!e.session) continue;  // a lingering close: its Fd closes it
    const Session& s = *e.session;
    Outcome o = s.framer.empty() ? Outcome::idle_timeout : Outcome::io_timeout;
    if (draining) o = s.framer.empty() ? drained(s) : Outcome::shutdown;
    finish(s, o, env_);
  }
  entries.clear();
}

void Parked::begin_drain(Clock::time_point deadline) {
  std::vector<Entry> answered;
  {
    std::lock_guard lock(mu_);
    draining_ = true;
    std::vector<int> fds;
    for (auto& [fd, e] : entries_) {
      if (e.session) fds.push_back(fd);
    }
    for (int fd : fds) {
      Entry& e = entries_.at(fd);
      const Session& s = *e.session;
      if (s.framer.empty() && s.replies > 0) {
        // Answered and idle: closes now, unless its next request is already here.
        if (!has_input(fd)) answered.push_back(take(fd));
        continue;
      }
      // A connection that has sent nothing yet: its client connected before the drain and
      // may be about to send. Closing it now would reset a request that arrives a moment later.
      const auto grace = std::max(Clock::now(), s.accepted + kFirstRequestGrace);
      const auto cap = s.framer.empty() ? std::min(grace, deadline) : deadline;
      set_deadline(fd, e, std::min(e.deadline, cap));
    }
  }
  expired(answered);
}

std::vector<Session> Parked::take_all() {
  std::vector<Session> out;
  std::lock_guard lock(mu_);
  std::vector<int> fds;
  for (auto& [fd, e] : entries_) {
    if (e.session) fds.push_back(fd);
  }
  out.reserve(fds.size());
  for (int fd : fds) out.push_back(std::move(*take(fd).session));
  return out;
}

std::size_t Parked::sessions() const {
  std::lock_guard lock(mu_);
  return sessions_;
}

}  // namespace tcpd

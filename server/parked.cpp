#include "parked.hpp"

#include <malloc.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "log.hpp"
#include "socket.hpp"

namespace tcpd {
namespace {

constexpr uint64_t kTimerTag = Parked::kFirstTag - 1;

}  // namespace

Parked::Parked(const SessionEnv& env, bool keep_registered, bool trim_when_quiet)
    : env_(env), keep_registered_(keep_registered), trim_when_quiet_(trim_when_quiet) {
  core_.watch(deadlines_.fd(), kTimerTag, true);
}

void Parked::watch(int fd, uint64_t tag, bool edge) {
  core_.watch(fd, tag, edge);
}

namespace {

// A session in the workers' set: edge-triggered, registered once. A lingering close and a
// session in the acceptor's set: one event, then re-armed (MOD) or removed (DEL).
constexpr uint32_t kSessionEvents = EPOLLIN | EPOLLRDHUP | EPOLLET;
constexpr uint32_t kOneEvent = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;

}  // namespace

// The entry for `fd`, registered with `events`: a new entry and EPOLL_CTL_ADD, or, when it is
// `registered` here already, its entry (as left) and EPOLL_CTL_MOD if `events` is one-shot or
// the registration must change (`modify`). Null when the kernel refuses (ENOMEM/ENOSPC:
// max_user_watches).
Parked::Entry* Parked::enter(int fd, bool registered, uint32_t events, bool modify) {
  auto it = entries_.try_emplace(fd).first;
  if (!registered) it->second = Entry{};  // a descriptor number's previous owner left nothing
  if (registered && (events & EPOLLONESHOT) == 0 && !modify) return &it->second;
  // Registered before the entry is filled in: the event's thread waits for mu_, held here.
  const auto key = static_cast<uint64_t>(fd);
  if (!(registered ? core_.modify(fd, events, key) : core_.add(fd, events, key))) {
    if (!registered) entries_.erase(it);
    return nullptr;
  }
  return &it->second;
}

// Takes what an entry holds. The entry stays while its descriptor is registered (workers' set)
// unless it is `closing`: it must be gone before the descriptor closes and its number is reused.
Parked::Entry Parked::take(std::unordered_map<int, Entry>::iterator it, bool closing) {
  Entry& e = it->second;
  Entry out;
  out.session = std::move(e.session);
  e.session.reset();
  out.fd = std::move(e.fd);
  out.deadline = e.deadline;
  out.wakes = e.wakes;
  out.quiet = e.quiet;
  out.linger_cap = e.linger_cap;
  e.ready = false;
  if (out.session) {
    --sessions_;
  } else if (out.fd) {
    --lingering_;
  }
  if (!keep_registered_) core_.remove(it->first);
  if (closing || !keep_registered_) entries_.erase(it);
  return out;
}

Parked::Park Parked::park(Session& s) {
  std::lock_guard lock(mu_);
  if (draining_) return Park::refused;
  const int fd = s.fd.get();
  const bool registered = keep_registered_ && s.registered;
  // Room to write is asked for only once a reply has found the socket full: a session that
  // never fills it never gets an EPOLLOUT event, and the one extra EPOLL_CTL_MOD is paid by the
  // client that does not read.
  const bool add_write = keep_registered_ && s.unsent && !s.watch_write;
  uint32_t events = keep_registered_ ? kSessionEvents : kOneEvent;
  if (add_write || s.watch_write) events |= EPOLLOUT;
  Entry* e = enter(fd, registered, events, add_write);
  if (e == nullptr) return Park::refused;
  if (e->ready) {
    e->ready = false;
    return Park::ready;
  }
  // An idle session keeps no buffer: a parked connection costs only its Session and its
  // entry. A partial request keeps its bytes (bounded by --max-message).
  s.framer.release_if_empty();
  if (keep_registered_) s.registered = true;
  if (add_write) s.watch_write = true;
  const ParkDeadline d = park_deadline(s);
  e->deadline = d.at;
  e->wakes = d.wake;
  e->session.emplace(std::move(s));
  index(fd, *e);
  ++sessions_;
  note_parked();
  return Park::parked;
}

void Parked::forget(int fd) {
  if (!keep_registered_) return;
  std::lock_guard lock(mu_);
  auto it = entries_.find(fd);
  if (it != entries_.end() && !it->second.session && !it->second.fd) entries_.erase(it);
}

void Parked::reject(Session& s, Outcome why) {
  if (send_now(s.fd.get(), kErrBusy)) {
    s.bytes_out = kErrBusy.size();
    env_.rec.sent(kErrBusy.size());
  }
  finish(s, why, env_);
  linger(std::move(s.fd), s.registered && keep_registered_, kRejectQuiet);
}

void Parked::linger(Fd fd, bool registered, Millis quiet) {
  const int raw = fd.get();
  ::shutdown(raw, SHUT_WR);
  // Whatever has arrived already goes now; most clients have closed by the next event.
  if (!discard_input(raw, kDiscardPerEvent) ||
      !keep_lingering(raw, fd, registered, quiet, Clock::now() + kLingerClose)) {
    forget(raw);  // before `fd` closes
  }
}

// mu_ not held. Files `fd` as a lingering close that ends after `quiet` of silence, or at
// `cap`. False when it was not kept (too many linger, or no registration).
bool Parked::keep_lingering(int raw, Fd& fd, bool registered, Millis quiet, Clock::time_point cap) {
  std::lock_guard lock(mu_);
  if (lingering_ >= kMaxLingering) return false;
  Entry* e = enter(raw, registered, kOneEvent);
  if (e == nullptr) return false;
  e->fd = std::move(fd);
  e->quiet = quiet;
  e->linger_cap = cap;
  e->deadline = std::min(cap, Clock::now() + quiet);
  index(raw, *e);
  ++lingering_;
  note_parked();
  return true;
}

// A lingering close's event: discard what came; done once the peer has closed, else it waits
// again (a rejection's quiet period starts again).
void Parked::on_lingering(int fd) {
  Entry e;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(fd);
    if (it == entries_.end() || !it->second.fd) return;
    e = take(it, false);
  }
  if (discard_input(fd, kDiscardPerEvent) &&
      keep_lingering(fd, e.fd, keep_registered_, e.quiet, e.linger_cap)) {
    return;
  }
  forget(fd);  // the peer closed (or no registration): e.fd closes now
}

// A kept event handed out after others have run is like one that lost a race: its session may
// have been closed by the timer or the drain meanwhile, or its descriptor number reused. The
// handling (on_event) allows for both: at worst a worker reads nothing and parks it again.
Parked::Woken Parked::wait(int timeout_ms) {
  auto e = core_.wait(timeout_ms, keep_registered_ ? kEventsPerWait : 1);
  if (!e) return {std::nullopt, 0, true};
  return on_event(*e);
}

Parked::Woken Parked::take_kept() {
  auto e = core_.take_kept();
  if (!e) return {std::nullopt, 0, true};
  return on_event(*e);
}

Parked::Woken Parked::on_event(EventCore::Event k) {
  if (k.key == kTimerTag) {
    on_timer();
    return {};
  }
  if (k.key >= kFirstTag) return {std::nullopt, k.key, false};
  const int fd = static_cast<int>(k.key);
  std::unique_lock lock(mu_);
  ++events_;
  auto it = entries_.find(fd);
  // Closed already (its deadline passed, or the drain), maybe reused: nothing to do.
  if (it == entries_.end()) return {};
  if (it->second.session) {
    Entry taken = take(it, false);
    // The peer's close comes as one edge: the worker must read to the end before parking.
    if ((k.events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) taken.session->hup_seen = true;
    return {std::move(taken.session), 0, false};
  }
  if (it->second.fd) {
    lock.unlock();
    on_lingering(fd);
    return {};
  }
  // A thread has the session: it will find this when it parks it.
  it->second.ready = true;
  return {};
}

std::vector<Session> Parked::take_all() {
  std::vector<Session> out;
  std::lock_guard lock(mu_);
  for (auto it = entries_.begin(); it != entries_.end();) {
    auto cur = it++;
    if (cur->second.session) out.push_back(std::move(*take(cur, false).session));
  }
  return out;
}

std::size_t Parked::deadline_keys() const {
  std::lock_guard lock(mu_);
  return deadlines_.size();
}

std::size_t Parked::sessions() const {
  std::lock_guard lock(mu_);
  return sessions_;
}

}  // namespace tcpd

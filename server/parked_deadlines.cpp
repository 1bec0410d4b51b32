// The parked set's deadlines: one lazy min-heap of keys, one timerfd armed for the earliest,
// what happens when a deadline passes, and the drain's deadlines.
#include <malloc.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <functional>

#include "parked.hpp"
#include "socket.hpp"

namespace tcpd {
// Files the entry's deadline unless an earlier key for it is filed already (that one falling
// due files the real deadline then): a session parked again after a reply costs nothing here.
void Parked::index(int fd, Entry& e) {
  if (e.deadline >= e.indexed) return;
  e.indexed = e.deadline;
  deadlines_.file(fd, e.deadline);
  // A key stays until it falls due even when its connection closed long before: without
  // compacting, 100,000 one-shot connections within an idle timeout leave 100,000 keys (2 MB).
  deadlines_.compact_if_needed(entries_.size(), [this](int key, Clock::time_point when) {
    auto it = entries_.find(key);
    return it != entries_.end() && it->second.indexed == when;
  });
}

void Parked::set_deadline(int fd, Entry& e, Clock::time_point deadline) {
  e.deadline = deadline;
  index(fd, e);
}

void Parked::note_parked() {
  if (trim_when_quiet_ && !trim_pending_) {
    trim_pending_ = true;
    deadlines_.arm(Clock::now() + kQuietAfter);
  }
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
  deadlines_.arm(now + kQuietAfter);
  return false;
}

void Parked::on_timer() {
  deadlines_.fired();
  std::vector<Entry> expired_entries;
  bool trim = false;
  {
    std::lock_guard lock(mu_);
    const auto now = Clock::now();
    deadlines_.pop_due(now, [&](int fd, Clock::time_point key) {
      auto it = entries_.find(fd);
      if (it == entries_.end() || it->second.indexed != key) return;  // a stale key
      Entry& e = it->second;
      e.indexed = Clock::time_point::max();
      if (!e.session && !e.fd) return;  // out with a thread: filed again when parked
      if (e.deadline <= now && e.wakes && e.session) {
        e.wakes = false;
        core_.hand_out(
            static_cast<uint64_t>(fd));  // its one-shot reply is due: a worker answers it
      } else if (e.deadline <= now) {
        expired_entries.push_back(take(it, true));
      } else {
        index(fd, e);  // its deadline moved later since it was filed
      }
    });
    deadlines_.rearm();
    trim = trim_due(now);
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
    finish(*e.session, expired_outcome(*e.session, draining), env_);
  }
  entries.clear();
}

bool Parked::begin_drain(Clock::time_point deadline) {
  std::vector<Entry> answered;
  bool handed_out = false;
  {
    std::lock_guard lock(mu_);
    draining_ = true;
    for (auto it = entries_.begin(); it != entries_.end();) {
      auto cur = it++;  // take() may erase cur
      Entry& e = cur->second;
      if (!e.session) continue;
      const Session& s = *e.session;
      const Pending input = peek_input(cur->first);
      if (s.framer.empty() && !s.unsent && s.replies > 0 && input != Pending::input) {
        // Answered and idle, its client gone or silent: closes now.
        answered.push_back(take(cur, true));
        continue;
      }
      // Input waiting (its event may have been taken already) or a close to read: a worker
      // serves what is there.
      if (input != Pending::nothing) {
        core_.hand_out(static_cast<uint64_t>(cur->first));
        handed_out = true;
      }
      // A connection that has sent nothing yet: its client connected before the drain and
      // may be about to send. Closing it now would reset a request that arrives a moment later.
      const auto grace = std::max(Clock::now(), s.accepted + kFirstRequestGrace);
      const bool fresh = s.framer.empty() && !s.unsent && s.replies == 0;
      set_deadline(cur->first, e,
                   std::min(e.deadline, fresh ? std::min(grace, deadline) : deadline));
    }
  }
  expired(answered);
  return handed_out;
}

}  // namespace tcpd

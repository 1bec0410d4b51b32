#pragma once

#include <cstddef>
#include <utility>
#include <vector>

#include "clock.hpp"
#include "fd.hpp"

namespace tcpd {

// Deadlines by key for a set whose members come and go, knowing nothing of what the keys stand
// for: one min-heap of (deadline, key) and one timerfd armed for the earliest deadline, or
// earlier. The heap is lazy: its owner files a key again only when a deadline comes earlier,
// and says which keys are still live when they are popped or compacted. Not locked: its
// owner's lock guards it.
class DeadlineQueue {
 public:
  using Due = std::pair<Clock::time_point, int>;

  DeadlineQueue();  // throws std::system_error
  DeadlineQueue(const DeadlineQueue&) = delete;
  DeadlineQueue& operator=(const DeadlineQueue&) = delete;

  // The timerfd: readable once the armed time has come (watch it in an EventCore).
  [[nodiscard]] int fd() const { return timer_.get(); }

  void file(int key, Clock::time_point when);
  // The timer fires at `t` unless it is armed for earlier already: only a deadline earlier than
  // the armed one costs a timerfd_settime().
  void arm(Clock::time_point t);

  // After the timer's event: reads it (before the owner's lock: a system call).
  void fired();
  // Pops every key due by `now`, oldest first, into `on_due(key, when)` (which may file again).
  template <typename OnDue>
  void pop_due(Clock::time_point now, OnDue on_due) {
    while (!heap_.empty() && heap_.front().first <= now) {
      const Due d = pop();
      on_due(d.second, d.first);
    }
  }
  // After pop_due(): the timer has fired, so it is armed afresh for the earliest key left.
  void rearm() {
    armed_ = Clock::time_point::max();
    if (!heap_.empty()) arm(heap_.front().first);
  }

  // Keys stay until they fall due even when their member left long before: once they outnumber
  // twice `live_members` (plus a margin), only those `is_live(key, when)` are kept, so that the
  // heap stays within that and compacting costs O(1) per key filed.
  template <typename IsLive>
  void compact_if_needed(std::size_t live_members, IsLive is_live) {
    if (heap_.size() <= 2 * live_members + 1024) return;
    std::erase_if(heap_, [&](const Due& d) { return !is_live(d.second, d.first); });
    rebuild();
  }

  [[nodiscard]] std::size_t size() const { return heap_.size(); }

 private:
  Due pop();
  void rebuild();

  Fd timer_;
  std::vector<Due> heap_;  // std::push_heap with std::greater: the earliest first
  Clock::time_point armed_ = Clock::time_point::max();
};

}  // namespace tcpd

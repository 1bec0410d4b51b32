#include "deadline_queue.hpp"

#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <functional>
#include <system_error>

namespace tcpd {

DeadlineQueue::DeadlineQueue()
    : timer_(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) {
  if (!timer_) throw std::system_error(errno, std::generic_category(), "timerfd_create");
}

void DeadlineQueue::file(int key, Clock::time_point when) {
  heap_.emplace_back(when, key);
  std::push_heap(heap_.begin(), heap_.end(), std::greater<>{});
  arm(when);
}

void DeadlineQueue::arm(Clock::time_point t) {
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

void DeadlineQueue::fired() {
  uint64_t ticks;
  [[maybe_unused]] auto rc = ::read(timer_.get(), &ticks, sizeof ticks);
}

DeadlineQueue::Due DeadlineQueue::pop() {
  std::pop_heap(heap_.begin(), heap_.end(), std::greater<>{});
  const Due d = heap_.back();
  heap_.pop_back();
  return d;
}

void DeadlineQueue::rebuild() {
  std::make_heap(heap_.begin(), heap_.end(), std::greater<>{});
  if (heap_.capacity() > 4 * heap_.size() + 1024) heap_.shrink_to_fit();
}

}  // namespace tcpd

#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <vector>

#include "fd.hpp"

namespace tcpd {

// An epoll set that knows nothing of what its descriptors carry: registrations by key, and the
// events one epoll_wait() returns beyond the first, kept in order for the next caller from any
// thread (no system call). Each event, kept or not, goes to exactly one caller.
class EventCore {
 public:
  struct Event {
    uint64_t key;
    uint32_t events;  // 0 for one handed out without the kernel (hand_out)
  };

  EventCore();  // throws std::system_error
  EventCore(const EventCore&) = delete;
  EventCore& operator=(const EventCore&) = delete;

  // False when the kernel refuses (ENOMEM/ENOSPC: max_user_watches); errno says why.
  bool add(int fd, uint32_t events, uint64_t key);
  bool modify(int fd, uint32_t events, uint64_t key);
  void remove(int fd);
  // A descriptor of the caller's own (an eventfd, a timerfd, a listener), reported as `key`
  // while readable, or once per wake-up when `edge`. Throws std::system_error.
  void watch(int fd, uint64_t key, bool edge);

  // The next event: a kept one, else one epoll_wait() of up to `max_events` (the first returned,
  // the rest kept), waiting up to `timeout_ms` (-1: no limit). Empty on timeout or EINTR.
  std::optional<Event> wait(int timeout_ms, int max_events);
  // Only a kept event: for a thread that knows another sleeps in epoll_wait() on this set,
  // which the kernel wakes for anything new.
  std::optional<Event> take_kept();
  // Queues `key` for the next wait() or take_kept(), as if the kernel had reported it.
  void hand_out(uint64_t key);
  // Events taken from the kernel and not handed out yet: no epoll_wait() reports them again.
  [[nodiscard]] bool has_kept() const { return kept_count_.load(std::memory_order_acquire) > 0; }

  static constexpr int kMaxEvents = 64;

 private:
  void keep(const Event* events, std::size_t n);

  Fd epoll_;
  std::mutex mu_;
  std::vector<Event> kept_;  // oldest first, from kept_head_
  std::size_t kept_head_ = 0;
  std::atomic<std::size_t> kept_count_{0};  // read without mu_
};

}  // namespace tcpd

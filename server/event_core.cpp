#include "event_core.hpp"

#include <sys/epoll.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "log.hpp"

namespace tcpd {

EventCore::EventCore() : epoll_(::epoll_create1(EPOLL_CLOEXEC)) {
  if (!epoll_) throw std::system_error(errno, std::generic_category(), "epoll_create1");
}

namespace {

bool control(int epfd, int op, int fd, uint32_t events, uint64_t key) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = key;
  return ::epoll_ctl(epfd, op, fd, &ev) == 0;
}

}  // namespace

bool EventCore::add(int fd, uint32_t events, uint64_t key) {
  return control(epoll_.get(), EPOLL_CTL_ADD, fd, events, key);
}

bool EventCore::modify(int fd, uint32_t events, uint64_t key) {
  return control(epoll_.get(), EPOLL_CTL_MOD, fd, events, key);
}

void EventCore::remove(int fd) {
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
}

void EventCore::watch(int fd, uint64_t key, bool edge) {
  if (!add(fd, EPOLLIN | (edge ? EPOLLET : 0U), key)) {
    throw std::system_error(errno, std::generic_category(), "epoll_ctl");
  }
}

void EventCore::keep(const Event* events, std::size_t n) {
  std::lock_guard lock(mu_);
  kept_.insert(kept_.end(), events, events + n);
  kept_count_.store(kept_.size() - kept_head_, std::memory_order_release);
}

void EventCore::hand_out(uint64_t key) {
  const Event e{key, 0};
  keep(&e, 1);
}

std::optional<EventCore::Event> EventCore::take_kept() {
  if (kept_count_.load(std::memory_order_acquire) == 0) return std::nullopt;
  std::lock_guard lock(mu_);
  if (kept_head_ == kept_.size()) return std::nullopt;
  const Event e = kept_[kept_head_++];
  if (kept_head_ == kept_.size()) {
    kept_.clear();
    kept_head_ = 0;
  }
  kept_count_.store(kept_.size() - kept_head_, std::memory_order_release);
  return e;
}

std::optional<EventCore::Event> EventCore::wait(int timeout_ms, int max_events) {
  if (auto e = take_kept()) return e;
  std::array<epoll_event, kMaxEvents> got;  // not zeroed: epoll_wait fills the first n
  const int n =
      ::epoll_wait(epoll_.get(), got.data(), std::clamp(max_events, 1, kMaxEvents), timeout_ms);
  if (n <= 0) {
    if (n < 0 && errno != EINTR) log_at(LogLevel::error, "epoll_wait: {}", std::strerror(errno));
    return std::nullopt;
  }
  if (n > 1) {
    std::array<Event, kMaxEvents> rest;
    for (int i = 1; i < n; ++i) rest[i - 1] = {got[i].data.u64, got[i].events};
    keep(rest.data(), static_cast<std::size_t>(n - 1));
  }
  return Event{got[0].data.u64, got[0].events};
}

}  // namespace tcpd

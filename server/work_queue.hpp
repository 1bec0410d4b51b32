#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <system_error>

#include "fd.hpp"

namespace tcpd {

// The hand-off between the acceptor (and the idle-session poller) and the workers: a
// mutex-guarded FIFO. New connections are bounded by `capacity`; a session coming back from
// the poller is always taken, since the connection already exists and is counted elsewhere.
//
// It also keeps an eventfd, backlog_fd(), readable exactly while items wait that no idle worker
// is about to take. A worker blocked on one of its own sessions polls it, so it can hand an idle
// session back and serve whoever is waiting.
template <typename T>
class WorkQueue {
 public:
  // `on_backlog` runs (outside the lock) each time the backlog signal goes up.
  explicit WorkQueue(std::size_t capacity, std::function<void()> on_backlog = {})
      : capacity_(capacity),
        on_backlog_(std::move(on_backlog)),
        backlog_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    if (!backlog_) throw std::system_error(errno, std::generic_category(), "eventfd");
  }

  // For new connections: never blocks; false when `capacity` new items already wait (or the
  // queue is closed), and `item` is left untouched for the caller to reject.
  bool try_push(T& item) {
    std::unique_lock lock(mu_);
    if (closed_ || fresh_ >= capacity_) return false;
    items_.push_back(Entry{std::move(item), true});
    ++fresh_;
    after_push(lock);
    return true;
  }

  // For sessions the server already holds. Always taken, even once closed: only a worker pushes
  // then, and it pops again before it can exit, so nothing pushed is stranded.
  void push(T& item) {
    std::unique_lock lock(mu_);
    items_.push_back(Entry{std::move(item), false});
    after_push(lock);
  }

  // Blocks for the next item; nullopt once closed and empty.
  std::optional<T> pop() {
    std::unique_lock lock(mu_);
    ++idle_;
    cv_.wait(lock, [this] { return !items_.empty() || closed_; });
    --idle_;
    if (items_.empty()) return std::nullopt;
    Entry e = std::move(items_.front());
    items_.pop_front();
    if (e.fresh) --fresh_;
    size_.store(items_.size(), std::memory_order_relaxed);
    if (items_.empty() && signalled_ && !sticky_) {
      uint64_t v;
      // Reset the level: nothing waits any more.
      [[maybe_unused]] auto rc = ::read(backlog_.get(), &v, sizeof v);
      signalled_ = false;
      backlogged_.store(false, std::memory_order_relaxed);
    }
    return std::move(e.item);
  }

  // Wakes every waiter; pop() drains what is left, then returns nullopt. backlog_fd() stays
  // readable from now on so that workers blocked on sessions notice the shutdown.
  void close() {
    bool raised = false;
    {
      std::lock_guard lock(mu_);
      closed_ = true;
      sticky_ = true;
      raised = signal();
    }
    cv_.notify_all();
    if (raised && on_backlog_) on_backlog_();
  }

  // Raises backlog_fd() for good without closing: every worker blocked on a session wakes up
  // (the drain uses it; pop() keeps working until close()).
  void wake_for_good() {
    bool raised = false;
    {
      std::lock_guard lock(mu_);
      sticky_ = true;
      raised = signal();
    }
    if (raised && on_backlog_) on_backlog_();
  }

  [[nodiscard]] int backlog_fd() const { return backlog_.get(); }
  // True while items wait that no idle worker will take: someone is owed a worker.
  [[nodiscard]] bool backlogged() const { return backlogged_.load(std::memory_order_relaxed); }
  [[nodiscard]] const std::atomic<bool>& backlog_flag() const { return backlogged_; }
  [[nodiscard]] std::size_t size() const { return size_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::size_t idle_workers() const {
    std::lock_guard lock(mu_);
    return idle_;
  }

 private:
  struct Entry {
    T item;
    bool fresh;
  };

  void after_push(std::unique_lock<std::mutex>& lock) {
    size_.store(items_.size(), std::memory_order_relaxed);
    const bool raised = items_.size() > idle_ && signal();
    lock.unlock();
    cv_.notify_one();  // no syscall when nobody waits
    if (raised && on_backlog_) on_backlog_();
  }

  // Returns true when the signal went up just now.
  bool signal() {
    // seq_cst: pairs with a worker that announces a blocking wait and then reads this flag.
    backlogged_.store(true, std::memory_order_seq_cst);
    if (signalled_) return false;
    uint64_t one = 1;
    [[maybe_unused]] auto rc = ::write(backlog_.get(), &one, sizeof one);
    signalled_ = true;
    return true;
  }

  const std::size_t capacity_;
  const std::function<void()> on_backlog_;
  Fd backlog_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Entry> items_;
  std::size_t fresh_ = 0;
  std::size_t idle_ = 0;
  bool closed_ = false;
  bool sticky_ = false;  // backlog_fd() stays raised
  bool signalled_ = false;
  std::atomic<std::size_t> size_{0};
  std::atomic<bool> backlogged_{false};
};

}  // namespace tcpd

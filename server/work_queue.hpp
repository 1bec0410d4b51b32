#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>

#include "eventfd.hpp"
#include "fd.hpp"

namespace tcpd {

// The hand-off from the acceptor to the workers: a mutex-guarded FIFO of new connections,
// bounded by `capacity`, and the rule for how idle workers wait for work (leader/followers).
//
// Work comes from two places: this queue, and the parked sessions' epoll set. One idle worker at
// a time, the leader, waits in epoll_wait() on that set; the others, the followers, sleep on
// this queue's condition variable. A push wakes the leader (through wake_fd(), which is in the
// epoll set) when it sleeps there and has not been raised yet, else a follower: the thread that
// is asleep anyway takes the new connection, and a follower wakes only for more work than that
// (fewer voluntary switches per one-shot connection: docs/DESIGN.md, "Waking workers"). A
// leader that leaves to serve wakes nobody: workers that finish a request look for the next
// ready one themselves, without sleeping, and only a worker about to sleep inside a request
// hands the lead to a follower (lend_lead). So one ready socket wakes at most one thread, and
// under load workers rarely sleep at all (the cost that matters: each sleep is a context switch).
template <typename T>
class WorkQueue {
 public:
  // What wait_turn() gives an idle worker.
  struct Turn {
    std::optional<T> item;  // a new connection to serve
    bool lead = false;      // wait on the epoll set, then call end_lead()
    // neither: finish() was called; the worker exits
  };

  explicit WorkQueue(std::size_t capacity) : capacity_(capacity), wake_(make_eventfd()) {}

  // For new connections: never blocks; false when `capacity` new items already wait (or the
  // queue is closed), and `item` is left untouched for the caller to reject.
  bool try_push(T& item) { return try_push(item, false); }

  // try_push() for a batch: the item is queued (running workers take it) but nobody is woken
  // until wake_held(). The acceptor accepts what its backlog holds before it wakes anyone: a
  // woken worker preempts it, so waking one per connection made the two alternate on one core
  // for every connection (docs/DESIGN.md, "The acceptor's batch"). Call wake_held() before
  // sleeping.
  bool try_push_held(T& item) { return try_push(item, true); }

  // The wake-ups the held pushes would have made: the leader once, then a follower for each
  // further item still queued.
  void wake_held() {
    std::unique_lock lock(mu_);
    const std::size_t n = std::min(held_, items_.size());
    held_ = 0;
    wake(lock, n);
  }

  // For sessions handed on from one worker to another, and connections the drain must serve
  // whatever the bound (the listen backlog, the parked new connections): always taken, and not
  // counted against the bound.
  void push(T& item) {
    std::unique_lock lock(mu_);
    items_.push_back({std::move(item), false});
    after_push(lock);
  }

  // Never blocks.
  std::optional<T> try_pop() {
    std::lock_guard lock(mu_);
    return pop_locked();
  }

  // Blocks until this worker has something to do: an item, the lead, or nothing (finished).
  Turn wait_turn() {
    std::unique_lock lock(mu_);
    ++followers_;
    cv_.wait(lock, [this] {
      return !items_.empty() || finished_ || !leader_.load(std::memory_order_relaxed);
    });
    --followers_;
    if (auto item = pop_locked()) return {std::move(item), false};
    if (finished_) return {};
    leader_.store(true, std::memory_order_relaxed);
    return {std::nullopt, true};
  }

  // The leader stops waiting on the epoll set (it got an event). Nobody is woken to lead in its
  // place: it, or another worker, looks again as soon as it has answered (and the last worker
  // to go idle always leads). Waking a follower here cost a context switch per request.
  void end_lead() {
    std::lock_guard lock(mu_);
    leader_.store(false, std::memory_order_relaxed);
    wake_raised_ = false;  // the next leader needs a fresh wake-up
  }

  // A worker may sleep inside a request (simulated work, a slow client's pause): if nobody leads,
  // a follower does, so that ready sessions do not wait for that request to end. `kept`: work
  // was taken from the epoll set and not handed out yet (Parked::has_kept()), which a leader
  // asleep in epoll_wait() would not hear of: it is woken to hand it out.
  void lend_lead(bool kept = false) {
    std::unique_lock lock(mu_);
    const bool promote = !leader_.load(std::memory_order_relaxed) && followers_ > 0;
    const bool raise = kept && leader_.load(std::memory_order_relaxed) && !wake_raised_;
    if (raise) wake_raised_ = true;
    lock.unlock();
    if (promote) cv_.notify_one();
    if (raise) raise_eventfd(wake_.get());
  }

  // Whoever's wait returned wake_fd()'s event (the leader, or a worker looking without sleeping,
  // which then takes the item itself): the next push that needs the leader raises it again.
  void woken() {
    std::lock_guard lock(mu_);
    wake_raised_ = false;
  }

  // No more try_push(); push() still works (the drain's own hand-offs).
  void close() {
    std::lock_guard lock(mu_);
    closed_ = true;
  }

  // Every waiting worker returns from wait_turn() with nothing, now and from now on. A worker
  // that leaves should call wake_leader(): the leader may be asleep in epoll_wait().
  void finish() {
    {
      std::lock_guard lock(mu_);
      finished_ = true;
    }
    cv_.notify_all();
    finished_cv_.notify_all();
    raise_eventfd(wake_.get());
  }
  // Blocks until finish() or `deadline`; true when finished.
  template <typename TimePoint>
  bool wait_finished(TimePoint deadline) {
    std::unique_lock lock(mu_);
    return finished_cv_.wait_until(lock, deadline, [this] { return finished_; });
  }
  void wake_leader() { raise_eventfd(wake_.get()); }

  // Edge-triggered in the epoll set: raised when a push finds a leader not raised yet.
  [[nodiscard]] int wake_fd() const { return wake_.get(); }
  [[nodiscard]] bool finished() const {
    std::lock_guard lock(mu_);
    return finished_;
  }
  [[nodiscard]] bool closed_and_empty() const {
    std::lock_guard lock(mu_);
    return closed_ && items_.empty();
  }
  [[nodiscard]] std::size_t size() const { return size_.load(std::memory_order_relaxed); }
  // Items counted against the bound (try_push's): never more than `capacity`.
  [[nodiscard]] std::size_t bounded_size() const {
    return bounded_.load(std::memory_order_relaxed);
  }
  // A worker leads: it is in, or about to enter, epoll_wait() on the parked set. Read without
  // the lock: a stale answer costs one system call or one request's delay, never an event.
  [[nodiscard]] bool leading() const { return leader_.load(std::memory_order_relaxed); }
  // Workers waiting for work (the leader and the followers).
  [[nodiscard]] std::size_t idle_workers() const {
    std::lock_guard lock(mu_);
    return followers_ + (leader_.load(std::memory_order_relaxed) ? 1 : 0);
  }

 private:
  bool try_push(T& item, bool held) {
    std::unique_lock lock(mu_);
    if (closed_ || bounded_.load(std::memory_order_relaxed) >= capacity_) return false;
    items_.push_back({std::move(item), true});
    bounded_.fetch_add(1, std::memory_order_relaxed);
    if (held) {
      ++held_;
      size_.store(items_.size(), std::memory_order_relaxed);
    } else {
      after_push(lock);
    }
    return true;
  }

  std::optional<T> pop_locked() {
    if (items_.empty()) return std::nullopt;
    T item = std::move(items_.front().item);
    if (items_.front().bounded) bounded_.fetch_sub(1, std::memory_order_relaxed);
    items_.pop_front();
    size_.store(items_.size(), std::memory_order_relaxed);
    return item;
  }

  void after_push(std::unique_lock<std::mutex>& lock) {
    size_.store(items_.size(), std::memory_order_relaxed);
    wake(lock, 1);
  }

  // Wake-ups for `n` new items: the leader, which sleeps anyway, unless its wake-up is raised
  // already, then a follower for each further item. Releases `lock` before waking anyone.
  void wake(std::unique_lock<std::mutex>& lock, std::size_t n) {
    if (n == 0) return;
    const bool raise = leader_.load(std::memory_order_relaxed) && !wake_raised_;
    if (raise) wake_raised_ = true;
    const std::size_t followers = std::min(n - (raise ? 1 : 0), followers_);
    lock.unlock();
    if (raise) raise_eventfd(wake_.get());
    for (std::size_t i = 0; i < followers; ++i) cv_.notify_one();
  }

  const std::size_t capacity_;
  Fd wake_;
  mutable std::mutex mu_;
  std::condition_variable cv_;           // followers
  std::condition_variable finished_cv_;  // wait_finished()
  struct Slot {
    T item;
    bool bounded;  // pushed by try_push()
  };
  std::deque<Slot> items_;
  std::size_t followers_ = 0;
  // Written under mu_ and read there; atomic only so that leading() may read it without mu_.
  std::atomic<bool> leader_{false};
  bool wake_raised_ = false;
  std::size_t held_ = 0;  // pushed by try_push_held(), not woken for yet
  bool closed_ = false;
  bool finished_ = false;
  std::atomic<std::size_t> size_{0};
  std::atomic<std::size_t> bounded_{0};  // written under mu_; atomic for bounded_size()
};

}  // namespace tcpd

#pragma once

#include <pthread.h>

#include <atomic>
#include <memory>
#include <vector>

namespace tcpd {

// Lets a worker block in a plain recv() on an idle session, the cheapest wait there is, and
// still be woken when someone else needs a worker or the drain begins: the worker announces the
// wait, re-checks its conditions, then blocks; a waker sends it a no-op signal (installed
// without SA_RESTART), so the recv() fails with EINTR.
//
// A signal that lands between the re-check and the recv() is lost. The poller therefore repeats
// kick_waiting() every millisecond while the queue is backlogged and a worker still waits: a
// lost wake-up costs at most that. A backlog kicks one worker at a time, so that one waiting
// connection does not make every worker give up its session.
class Waker {
 public:
  explicit Waker(unsigned workers);
  static int signal_number();

  void attach(unsigned worker);  // from the worker's own thread, before its first wait
  void begin_wait(unsigned worker) {
    slots_[worker].waiting.store(true, std::memory_order_seq_cst);
  }
  void end_wait(unsigned worker) { slots_[worker].waiting.store(false, std::memory_order_relaxed); }

  // Signals up to `at_most` workers announced as waiting. Returns how many were signalled.
  unsigned kick_waiting(unsigned at_most = ~0U);

 private:
  struct Slot {
    std::atomic<bool> waiting{false};
    std::atomic<bool> attached{false};
    pthread_t thread{};
  };
  std::unique_ptr<Slot[]> slots_;
  unsigned count_;
};

}  // namespace tcpd

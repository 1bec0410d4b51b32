#include "waker.hpp"

#include <csignal>
#include <mutex>

namespace tcpd {
namespace {

void on_wake(int /*sig*/) {}

void install_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_handler = on_wake;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: the point is to interrupt the blocked recv()
    sigaction(Waker::signal_number(), &sa, nullptr);
  });
}

}  // namespace

int Waker::signal_number() {
  return SIGRTMIN + 2;
}

Waker::Waker(unsigned workers) : slots_(std::make_unique<Slot[]>(workers)), count_(workers) {
  install_handler();
}

void Waker::attach(unsigned worker) {
  slots_[worker].thread = pthread_self();
  slots_[worker].attached.store(true, std::memory_order_release);
}

unsigned Waker::kick_waiting(unsigned at_most) {
  unsigned kicked = 0;
  for (unsigned i = 0; i < count_ && kicked < at_most; ++i) {
    Slot& s = slots_[i];
    if (s.waiting.load(std::memory_order_seq_cst) && s.attached.load(std::memory_order_acquire)) {
      pthread_kill(s.thread, signal_number());
      ++kicked;
    }
  }
  return kicked;
}

}  // namespace tcpd

#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "client_config.hpp"
#include "fd.hpp"
#include "histogram.hpp"
#include "load.hpp"
#include "schedule.hpp"

namespace tcpd {

// One event loop's figures for the --interval under way; the watching thread takes and resets
// them at each boundary (the lock is the loop's own, uncontended but for that moment).
struct Window {
  std::mutex mu;
  Histogram latency;
  uint64_t ok = 0;
  uint64_t failed = 0;
};

// What the event loops of one run share: the plan (read-only once they start) and a few
// counters.
struct RunState {
  RunState(const ClientConfig& c, const Target& t) : cfg(c), target(t) {}

  const ClientConfig& cfg;
  const Target& target;
  Schedule schedule;
  unsigned threads = 1;
  std::vector<std::string> requests;  // each with its newline, cycled
  // Local addresses to bind, cycled over the connections (empty: the kernel picks): see
  // loopback_sources().
  std::vector<sockaddr_storage> sources;
  Clock::time_point measured_from{};        // start + --warmup
  std::atomic<uint64_t> closed_tickets{0};  // closed loop with --count: requests taken so far
  std::atomic<uint64_t> open_tickets{0};    // --rate: requests sent so far
  std::atomic<uint64_t> done{0};
  std::atomic<uint64_t> ok{0};
  Fd first{};  // the connection that found the target: loop 0's first connection
  const std::atomic<bool>* stop = nullptr;

  [[nodiscard]] bool stopped() const {
    return stop != nullptr && stop->load(std::memory_order_relaxed);
  }
};

// Drives loop `index`'s share of the run's connections (connections index, index + threads, ...)
// with non-blocking sockets and one epoll set until its requests are done or the run is
// stopped. Results go to `r` and, with --interval, to `window`.
void run_loop(RunState& run, unsigned index, LoadResult& r, Window* window);

}  // namespace tcpd

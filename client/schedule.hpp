#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>

#include "clock.hpp"

namespace tcpd {

// When a run's requests and connections are due. Pure arithmetic, so the event loops need no
// shared queue of send times: ticket i of a run at `rate` per second is due at start + i / rate
// (from the index, not by adding a rounded interval: 300/s for 1 s is 300 requests, not 301),
// and event-loop thread t of T owns tickets t, t + T, t + 2T, ...
struct Schedule {
  Clock::time_point start{};
  double rate = 0;                                   // requests/s in total; 0: closed loop
  uint64_t max_tickets = UINT64_MAX;                 // --count, or --duration x --rate
  Clock::time_point end = Clock::time_point::max();  // no request is due at or after this

  [[nodiscard]] Clock::time_point due(uint64_t ticket) const {
    return start + std::chrono::nanoseconds(std::llround(static_cast<double>(ticket) * 1e9 / rate));
  }
  // Thread `thread` of `threads`: its k-th ticket.
  [[nodiscard]] static uint64_t ticket_of(unsigned thread, unsigned threads, uint64_t k) {
    return thread + k * threads;
  }
  // Whether the ticket is part of the run (open loop).
  [[nodiscard]] bool scheduled(uint64_t ticket) const {
    return ticket < max_tickets && due(ticket) < end;
  }
};

// --ramp-up: connection `index` of `connections` starts this long after the run.
inline Clock::duration ramp_offset(double ramp_up_s, uint64_t index, uint64_t connections) {
  const double s = connections == 0
                       ? 0
                       : ramp_up_s * static_cast<double>(index) / static_cast<double>(connections);
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

// Connections per event-loop thread: thread t of T drives connections t, t + T, ..., so the
// shares differ by at most one.
inline uint64_t share_of(unsigned thread, unsigned threads, uint64_t connections) {
  return connections / threads + (thread < connections % threads ? 1 : 0);
}

}  // namespace tcpd

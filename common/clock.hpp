#pragma once

#include <algorithm>
#include <chrono>

namespace tcpd {

using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

// Milliseconds left until `deadline`, rounded up and clamped for poll(2); 0 when past.
inline int poll_timeout_ms(Clock::time_point deadline, Clock::time_point now = Clock::now()) {
  if (deadline == Clock::time_point::max()) return -1;
  if (deadline <= now) return 0;
  auto left = std::chrono::ceil<Millis>(deadline - now).count();
  return static_cast<int>(std::min<long long>(left, 1000LL * 60 * 60));
}

}  // namespace tcpd

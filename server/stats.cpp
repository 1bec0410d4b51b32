#include "stats.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace tcpd {
std::string_view outcome_name(Outcome o) {
  switch (o) {
    case Outcome::served: return "served";
    case Outcome::no_request: return "no_request";
    case Outcome::busy: return "busy";
    case Outcome::shed: return "shed";
    case Outcome::idle_timeout: return "idle_timeout";
    case Outcome::io_timeout: return "io_timeout";
    case Outcome::too_long: return "too_long";
    case Outcome::reset: return "reset";
    case Outcome::shutdown: return "shutdown";
    case Outcome::error: return "error";
    case Outcome::bad_header: return "bad_header";
    case Outcome::denied: return "denied";
    case Outcome::limited: return "limited";
    case Outcome::count_: break;
  }
  return "?";
}

void Histogram::observe(Clock::duration d, uint64_t n) {
  const double s = std::chrono::duration<double>(d).count();
  const auto at = std::lower_bound(kLatencyBounds.begin(), kLatencyBounds.end(), s);
  buckets_[static_cast<std::size_t>(at - kLatencyBounds.begin())].fetch_add(
      n, std::memory_order_relaxed);
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  sum_ns_.fetch_add(static_cast<uint64_t>(std::max<int64_t>(ns, 0)) * n, std::memory_order_relaxed);
}

void Histogram::add_to(HistogramSnapshot& out) const {
  for (std::size_t i = 0; i < buckets_.size(); ++i) {
    const uint64_t v = buckets_[i].load(std::memory_order_relaxed);
    out.buckets[i] += v;
    out.count += v;
  }
  out.sum_seconds += static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
}

uint64_t StatsSnapshot::ended() const {
  uint64_t sum = 0;
  for (auto v : outcomes) sum += v;
  return sum;
}

std::string StatsSnapshot::format() const {
  std::string out =
      fmt::format("accepted={} open={} requests={}", accepted, accepted - ended(), requests);
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    out += fmt::format(" {}={}", outcome_name(static_cast<Outcome>(i)), outcomes[i]);
  }
  out += fmt::format(" one_shot_replies={} bytes_in={} bytes_out={}", one_shot_replies, bytes_in,
                     bytes_out);
  return out;
}

Stats::Stats(unsigned slots) : count_(slots), slots_(std::make_unique<Slot[]>(slots + 1)) {}

StatsSnapshot Stats::snapshot() const {
  StatsSnapshot s;
  // Outcomes before accepted: a connection is counted accepted before it can end, so reading in
  // this order never shows more ended than accepted.
  for (std::size_t i = 0; i < s.outcomes.size(); ++i) {
    s.outcomes[i] = outcomes_[i].load(std::memory_order_acquire);
  }
  for (unsigned i = 0; i <= count_; ++i) {
    const Slot& slot = slots_[i];
    s.requests += slot.requests.load(std::memory_order_relaxed);
    s.one_shot_replies += slot.one_shot.load(std::memory_order_relaxed);
    s.bytes_in += slot.bytes_in.load(std::memory_order_relaxed);
    s.bytes_out += slot.bytes_out.load(std::memory_order_relaxed);
    slot.request_duration.add_to(s.request_duration);
    slot.queue_wait.add_to(s.queue_wait);
  }
  s.accepted = accepted_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace tcpd

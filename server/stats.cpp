#include "stats.hpp"

#include <fmt/format.h>

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
    case Outcome::count_: break;
  }
  return "?";
}

uint64_t StatsSnapshot::ended() const {
  uint64_t sum = 0;
  for (auto v : outcomes) sum += v;
  return sum;
}

std::string StatsSnapshot::format() const {
  std::string out =
      fmt::format("accepted={} active={} requests={}", accepted, accepted - ended(), requests);
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    out += fmt::format(" {}={}", outcome_name(static_cast<Outcome>(i)), outcomes[i]);
  }
  return out;
}

StatsSnapshot Stats::snapshot() const {
  StatsSnapshot s;
  // Outcomes before accepted: a connection is counted accepted before it can end, so reading in
  // this order never shows more ended than accepted.
  for (std::size_t i = 0; i < s.outcomes.size(); ++i) {
    s.outcomes[i] = outcomes_[i].load(std::memory_order_acquire);
  }
  s.requests = requests_.load(std::memory_order_relaxed);
  s.accepted = accepted_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace tcpd

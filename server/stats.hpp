#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tcpd {

// How a connection ended. Every accepted connection ends in exactly one of these.
enum class Outcome : std::size_t {
  served,        // the client closed after its requests, or a one-shot reply was sent
  no_request,    // the client closed before sending a complete request
  busy,          // rejected with "ERR busy": the queue was full
  shed,          // rejected with "ERR busy": out of file descriptors (EMFILE/ENFILE)
  idle_timeout,  // no request began within --idle-timeout-ms
  io_timeout,    // a request did not finish arriving, or a reply could not be written, in time
  too_long,      // "ERR too long"
  reset,         // the peer reset the connection
  shutdown,      // closed by the drain before any reply, or cut off by the drain deadline
  error,         // any other I/O error
  count_
};

std::string_view outcome_name(Outcome o);

struct StatsSnapshot {
  uint64_t accepted = 0;
  uint64_t requests = 0;  // replies written
  std::array<uint64_t, static_cast<std::size_t>(Outcome::count_)> outcomes{};

  [[nodiscard]] uint64_t ended() const;
  [[nodiscard]] uint64_t of(Outcome o) const { return outcomes[static_cast<std::size_t>(o)]; }
  // "accepted=3 active=0 requests=5 served=2 ... "
  [[nodiscard]] std::string format() const;
};

class Stats {
 public:
  void accepted() { accepted_.fetch_add(1, std::memory_order_relaxed); }
  void replies(uint64_t n) { requests_.fetch_add(n, std::memory_order_relaxed); }
  void ended(Outcome o) {
    // Release: a snapshot that sees this outcome also sees the connection's `accepted`.
    outcomes_[static_cast<std::size_t>(o)].fetch_add(1, std::memory_order_release);
  }
  [[nodiscard]] StatsSnapshot snapshot() const;
  [[nodiscard]] uint64_t accepted_count() const {
    return accepted_.load(std::memory_order_relaxed);
  }

 private:
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> requests_{0};
  std::array<std::atomic<uint64_t>, static_cast<std::size_t>(Outcome::count_)> outcomes_{};
};

}  // namespace tcpd

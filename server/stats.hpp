#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "clock.hpp"

namespace tcpd {

// How a connection ended. Every accepted connection ends in exactly one of these.
enum class Outcome : std::size_t {
  served,        // the client closed (or reset) after its replies, or a one-shot reply was sent
  no_request,    // the client closed before sending a complete request
  busy,          // rejected with "ERR busy": the queue was full
  shed,          // rejected with "ERR busy": out of file descriptors (EMFILE/ENFILE)
  idle_timeout,  // no request began within --idle-timeout-ms
  io_timeout,    // a request did not finish arriving, or a reply could not be written, in time
  too_long,      // "ERR too long"
  reset,         // the peer reset the connection mid-request or before any reply
  shutdown,      // closed by the drain before any reply, or cut off by the drain deadline
  error,         // any other I/O error
  bad_header,    // --proxy-protocol: no valid PROXY header in time
  denied,        // --allow/--deny, or a PROXY header from outside --proxy-from: closed, no reply
  limited,       // "ERR busy": over --max-conns-per-client
  count_
};

std::string_view outcome_name(Outcome o);

// Prometheus-style buckets from 5 µs to 10 s (upper bounds, seconds), plus +Inf: a keep-alive
// request on loopback takes tens of µs, so the low end needs buckets of its own.
inline constexpr std::array<double, 20> kLatencyBounds = {
    0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
    0.01,     0.025,   0.05,     0.1,     0.25,   0.5,     1.0,    2.5,   5.0,    10.0};

struct HistogramSnapshot {
  std::array<uint64_t, kLatencyBounds.size() + 1> buckets{};  // not cumulative; last is +Inf
  uint64_t count = 0;
  double sum_seconds = 0;
};

// A latency histogram recorded with relaxed atomics: no lock, any thread.
class Histogram {
 public:
  void observe(Clock::duration d, uint64_t n = 1);
  void add_to(HistogramSnapshot& out) const;

 private:
  std::array<std::atomic<uint64_t>, kLatencyBounds.size() + 1> buckets_{};
  std::atomic<uint64_t> sum_ns_{0};
};

struct StatsSnapshot {
  uint64_t accepted = 0;
  uint64_t requests = 0;          // replies written
  uint64_t one_shot_replies = 0;  // of those, one-shot replies (no newline, then closed)
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  std::array<uint64_t, static_cast<std::size_t>(Outcome::count_)> outcomes{};
  HistogramSnapshot request_duration;  // a request's first byte -> its reply written
  HistogramSnapshot queue_wait;        // queued -> taken by a worker

  [[nodiscard]] uint64_t ended() const;
  [[nodiscard]] uint64_t open() const { return accepted - ended(); }
  [[nodiscard]] uint64_t of(Outcome o) const { return outcomes[static_cast<std::size_t>(o)]; }
  // "accepted=3 open=0 requests=5 served=2 ... one_shot_replies=1 bytes_in=… bytes_out=…"
  [[nodiscard]] std::string format() const;
};

// One recording thread's counters, on cache lines of their own.
struct alignas(64) StatsSlot {
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> one_shot{0};
  std::atomic<uint64_t> bytes_in{0};
  std::atomic<uint64_t> bytes_out{0};
  Histogram request_duration;
  Histogram queue_wait;
};

// What one thread records per request, into its own slot: no lock, and no cache line shared with
// another worker. A worker holds its own; the acceptor, the parked set's timer and the tests
// share one.
class Recorder {
 public:
  explicit Recorder(StatsSlot& slot) : slot_(&slot) {}
  // `n` replies written; the first request among them began at `started`.
  void replies(uint64_t n, Clock::time_point started, Clock::time_point now) const {
    add(slot_->requests, n);
    slot_->request_duration.observe(now - started, n);
  }
  void one_shot() const { add(slot_->one_shot, 1); }
  void received(uint64_t bytes) const { add(slot_->bytes_in, bytes); }
  void sent(uint64_t bytes) const { add(slot_->bytes_out, bytes); }
  void queue_waited(Clock::duration d) const { slot_->queue_wait.observe(d); }

 private:
  static void add(std::atomic<uint64_t>& a, uint64_t n) {
    a.fetch_add(n, std::memory_order_relaxed);
  }
  StatsSlot* slot_;
};

// The server's counters: connections and their outcomes here, what happens per request in the
// recorders' slots (see Recorder); a snapshot adds the slots up.
class Stats {
 public:
  explicit Stats(unsigned slots = 1);

  // Slot `index` (< slots) for one worker; the shared one for every other thread.
  [[nodiscard]] Recorder recorder(unsigned index) { return Recorder(slots_[index]); }
  [[nodiscard]] Recorder shared() { return Recorder(slots_[count_]); }

  void accepted() { accepted_.fetch_add(1, std::memory_order_relaxed); }
  void ended(Outcome o) {
    // Release: a snapshot that sees this outcome also sees the connection's `accepted`.
    outcomes_[static_cast<std::size_t>(o)].fetch_add(1, std::memory_order_release);
  }

  [[nodiscard]] StatsSnapshot snapshot() const;
  [[nodiscard]] uint64_t accepted_count() const {
    return accepted_.load(std::memory_order_relaxed);
  }

 private:
  using Slot = StatsSlot;

  std::atomic<uint64_t> accepted_{0};
  std::array<std::atomic<uint64_t>, static_cast<std::size_t>(Outcome::count_)> outcomes_{};
  unsigned count_;
  std::unique_ptr<Slot[]> slots_;  // count_ + 1: the last is shared
};

}  // namespace tcpd

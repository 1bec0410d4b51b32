#include "load.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "socket.hpp"

namespace tcpd {
namespace {

// One thread's figures for the --interval under way; the main thread takes and resets them at
// each boundary (the lock is the worker's own, so it is taken uncontended but for that moment).
struct Window {
  std::mutex mu;
  Histogram latency;
  uint64_t ok = 0;
  uint64_t failed = 0;
};

struct Shared {
  const ClientConfig& cfg;
  const Target& target;
  std::vector<std::string> requests;  // each with its newline, cycled
  Clock::time_point start;
  Clock::time_point end;              // max() in count mode
  uint64_t max_tickets = UINT64_MAX;  // requests to schedule: --count, or --duration x --rate
  Clock::time_point measured_from{};  // start + --warmup
  std::atomic<uint64_t> tickets{0};
  std::atomic<uint64_t> done{0};
  std::atomic<uint64_t> ok{0};
  Fd first{};  // the connection that found the target; the first worker to connect takes it
  std::atomic<bool> first_taken{false};
  const std::atomic<bool>* stop = nullptr;
};

// The next request this thread may send, and when it is due; nullopt when the run is over.
std::optional<Clock::time_point> next_ticket(Shared& sh) {
  if (sh.stop != nullptr && sh.stop->load(std::memory_order_relaxed)) return std::nullopt;
  const auto now = Clock::now();
  if (sh.cfg.rate <= 0) {
    if (now >= sh.end) return std::nullopt;
    if (sh.end == Clock::time_point::max() &&
        sh.tickets.fetch_add(1, std::memory_order_relaxed) >= sh.cfg.count) {
      return std::nullopt;
    }
    return now;
  }
  const uint64_t i = sh.tickets.fetch_add(1, std::memory_order_relaxed);
  if (i >= sh.max_tickets) return std::nullopt;
  // From the index, not by adding a rounded interval: 300/s for 1 s is 300 requests, not 301.
  const auto due =
      sh.start + std::chrono::nanoseconds(std::llround(static_cast<double>(i) * 1e9 / sh.cfg.rate));
  if (due >= sh.end) return std::nullopt;
  return due;
}

// Opens the worker's connection; the failure when it cannot. `reused` is set when it is the
// connection that found the target, opened before the run (it may have been closed since).
Failure open_connection(Shared& sh, LoadResult& r, std::optional<Connection>& conn, bool& reused) {
  // The flag first: only the one thread that wins it may look at (and take) `first`.
  if (!sh.first_taken.exchange(true) && sh.first) {
    conn.emplace(std::move(sh.first), sh.cfg.timeout);
    reused = true;
    return Failure::none;
  }
  ConnectResult c = connect_blocking(reinterpret_cast<const sockaddr*>(&sh.target.addr),
                                     sh.target.len, sh.cfg.timeout);
  if (!c.fd) {
    if (c.error == EADDRNOTAVAIL) ++r.out_of_ports;
    if (c.error == EMFILE || c.error == ENFILE) ++r.out_of_fds;
    return classify_connect(c.error);
  }
  conn.emplace(std::move(c.fd), Connection::Ready{});
  return Failure::none;
}

// One request on the worker's connection, opening one if needed. A reused keep-alive
// connection that the server had already closed (its idle timeout, or a drain during a rolling
// restart) fails before any byte of a reply; like an HTTP client, tcpc then sends the request
// once more on a new connection, which a load balancer or a restarted server takes.
Failure one_request(Shared& sh, LoadResult& r, std::optional<Connection>& conn,
                    const std::string& request, const std::string* expect) {
  for (int attempt = 0;; ++attempt) {
    bool reused = conn.has_value();
    if (!conn) {
      if (Failure f = open_connection(sh, r, conn, reused); f != Failure::none) return f;
    }
    ReplyResult rr = conn->request(request);
    Failure f = rr.failure == Failure::none ? classify_reply(rr.reply, expect) : rr.failure;
    if (rr.failure == Failure::other && rr.closed) f = Failure::reset;  // closed, no reply
    const bool stale = reused && rr.reply.empty() && (f == Failure::reset);
    if (f != Failure::none || !sh.cfg.keepalive || rr.closed) conn.reset();
    if (stale && attempt == 0) {
      ++r.reconnects;
      continue;
    }
    return f;
  }
}

uint64_t micros(Clock::duration d) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
}

bool stopped(const Shared& sh) {
  return sh.stop != nullptr && sh.stop->load(std::memory_order_relaxed);
}

// When one request ended: its latency from `t0` (the scheduled time with --rate) and from the
// actual send, into the thread's totals and its --interval window.
struct Timing {
  Clock::time_point t0;
  Clock::time_point sent;
};

void record(Shared& sh, LoadResult& r, Window* window, Failure f, Timing t) {
  const auto done = Clock::now();
  ++r.requests;
  if (window != nullptr) {
    std::lock_guard lock(window->mu);
    if (f == Failure::none) window->latency.record(micros(done - t.t0));
    ++(f == Failure::none ? window->ok : window->failed);
  }
  if (f != Failure::none) {
    ++r.failures[static_cast<std::size_t>(f)];
    return;
  }
  ++r.ok;
  r.latency.record(micros(done - t.t0));
  if (r.latency_uncorrected) r.latency_uncorrected->record(micros(done - t.sent));
  sh.ok.fetch_add(1, std::memory_order_relaxed);
}

void worker(Shared& sh, LoadResult& r, Window* window, Clock::time_point first_start) {
  std::optional<Connection> conn;
  uint64_t sent_count = 0;
  const std::string* expect = sh.cfg.expect ? &*sh.cfg.expect : nullptr;
  // --ramp-up: this thread's first connection waits for its turn.
  while (Clock::now() < first_start && !stopped(sh)) {
    std::this_thread::sleep_until(std::min(first_start, Clock::now() + Millis{100}));
  }
  while (auto due = next_ticket(sh)) {
    if (*due > Clock::now()) std::this_thread::sleep_until(*due);
    if (stopped(sh)) break;
    // Open loop: latency counts from when the request was due, so a stalled server cannot hide
    // the queueing it causes (coordinated omission).
    const auto sent = Clock::now();
    const auto t0 = sh.cfg.rate > 0 ? *due : sent;
    const std::string& request = sh.requests[sent_count++ % sh.requests.size()];
    const Failure f = one_request(sh, r, conn, request, expect);
    // --warmup: what completes before the measured window opens counts nowhere.
    if (Clock::now() < sh.measured_from) continue;
    record(sh, r, window, f, {t0, sent});
    // A failing connect in a tight loop would only burn the ports or descriptors it lacks.
    if (f != Failure::none && r.out_of_ports + r.out_of_fds > 0 && !conn) {
      std::this_thread::sleep_for(Millis{1});
    }
    sh.done.fetch_add(1, std::memory_order_relaxed);
  }
}

Clock::duration seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

// The run's schedule: requests, the measured window, how many requests to schedule.
void plan(Shared& sh, const ClientConfig& cfg) {
  for (const auto& m : cfg.messages) sh.requests.push_back(m + "\n");
  if (sh.requests.empty()) sh.requests.push_back(cfg.msg + "\n");
  sh.measured_from = sh.start + seconds(cfg.warmup_s);
  if (cfg.duration_s) sh.end = sh.measured_from + seconds(*cfg.duration_s);
  if (!cfg.duration_s) {
    sh.max_tickets = cfg.count;
  } else if (cfg.rate > 0) {
    sh.max_tickets = static_cast<uint64_t>((*cfg.duration_s + cfg.warmup_s) * cfg.rate + 1e-9);
  }
}

// Takes every thread's window: the figures of the interval that just ended at `end_s`.
IntervalStats close_interval(std::vector<std::unique_ptr<Window>>& windows, double end_s,
                             double length) {
  Histogram merged;
  IntervalStats iv;
  for (auto& w : windows) {
    std::lock_guard lock(w->mu);
    merged.merge(w->latency);
    iv.ok += w->ok;
    iv.failed += w->failed;
    w->latency = Histogram();
    w->ok = w->failed = 0;
  }
  iv.end_s = end_s;
  iv.rps = length > 0 ? static_cast<double>(iv.ok) / length : 0;
  iv.p50_us = merged.percentile(0.50);
  iv.p99_us = merged.percentile(0.99);
  return iv;
}

// The threads' results added up.
LoadResult merge_results(const std::vector<LoadResult>& results, bool rate) {
  LoadResult total;
  if (rate) total.latency_uncorrected.emplace();
  for (const auto& r : results) {
    total.requests += r.requests;
    total.ok += r.ok;
    for (std::size_t k = 0; k < total.failures.size(); ++k) total.failures[k] += r.failures[k];
    total.out_of_ports += r.out_of_ports;
    total.out_of_fds += r.out_of_fds;
    total.reconnects += r.reconnects;
    total.latency.merge(r.latency);
    if (r.latency_uncorrected) total.latency_uncorrected->merge(*r.latency_uncorrected);
  }
  return total;
}

// The threads of one run and the calling thread's watch over them: a tick every second (every
// --interval, with its figures) until the last thread has finished.
class Run {
 public:
  Run(Shared& sh, const ClientConfig& cfg) : sh_(sh), cfg_(cfg), results_(cfg.concurrency) {
    if (cfg.rate > 0) {
      for (auto& r : results_) r.latency_uncorrected.emplace();
    }
    if (cfg.interval_s > 0) {
      for (unsigned i = 0; i < cfg.concurrency; ++i) windows_.push_back(std::make_unique<Window>());
    }
    running_ = cfg.concurrency;
    threads_.reserve(cfg.concurrency);
    for (unsigned i = 0; i < cfg.concurrency; ++i) {
      const auto first_start = sh.start + seconds(cfg.ramp_up_s * i / cfg.concurrency);
      Window* window = windows_.empty() ? nullptr : windows_[i].get();
      threads_.emplace_back([this, i, window, first_start] {
        worker(sh_, results_[i], window, first_start);
        std::lock_guard lock(mu_);
        if (--running_ == 0) cv_.notify_all();
      });
    }
  }

  void watch(const std::function<void(const Progress&)>& on_tick) {
    const auto period = cfg_.interval_s > 0 ? seconds(cfg_.interval_s) : seconds(1);
    std::unique_lock lock(mu_);
    auto next = sh_.measured_from + period;
    while (!cv_.wait_until(lock, next, [&] { return running_ == 0; })) {
      lock.unlock();
      Progress p{sh_.done.load(), sh_.ok.load(), since(sh_.start)};
      if (!windows_.empty()) {
        intervals_.push_back(close_interval(
            windows_, std::chrono::duration<double>(next - sh_.measured_from).count(),
            cfg_.interval_s));
        p.interval = &intervals_.back();
      }
      on_tick(p);
      lock.lock();
      next += period;
    }
  }

  LoadResult finish() {
    for (auto& t : threads_) t.join();
    if (!windows_.empty()) {
      // The last, partial interval.
      const double open = since(sh_.measured_from);
      const double last_end = intervals_.empty() ? 0 : intervals_.back().end_s;
      if (open > last_end + 1e-3) {
        intervals_.push_back(close_interval(windows_, open, open - last_end));
      }
    }
    LoadResult total = merge_results(results_, cfg_.rate > 0);
    total.intervals = std::move(intervals_);
    return total;
  }

 private:
  static double since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
  }

  Shared& sh_;
  const ClientConfig& cfg_;
  std::vector<LoadResult> results_;
  std::vector<std::unique_ptr<Window>> windows_;
  std::vector<IntervalStats> intervals_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  unsigned running_ = 0;
};

}  // namespace

LoadResult run_load(const ClientConfig& cfg, const Target& target,
                    const std::function<void(const Progress&)>& on_tick, RunControl control) {
  Shared sh{cfg, target, {}, Clock::now(), Clock::time_point::max()};
  plan(sh, cfg);
  sh.first = std::move(control.first);
  sh.stop = control.stop;
  const auto wall_start = std::chrono::system_clock::now();
  Run run(sh, cfg);
  run.watch(on_tick);
  LoadResult total = run.finish();
  total.started_at = wall_start;
  total.seconds = std::chrono::duration<double>(Clock::now() - sh.measured_from).count();
  if (cfg.rate > 0) {
    // With --rate the window is at least the scheduled span, so finishing early is not rps.
    const uint64_t scheduled = std::min(sh.tickets.load(), sh.max_tickets);
    total.seconds =
        std::max(total.seconds, static_cast<double>(scheduled) / cfg.rate - cfg.warmup_s);
  }
  return total;
}

}  // namespace tcpd

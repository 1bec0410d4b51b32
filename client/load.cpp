#include "load.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "socket.hpp"

namespace tcpd {
namespace {

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
  if (sh.first && !sh.first_taken.exchange(true)) {
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

void worker(Shared& sh, LoadResult& r) {
  std::optional<Connection> conn;
  uint64_t sent_count = 0;
  const std::string* expect = sh.cfg.expect ? &*sh.cfg.expect : nullptr;
  while (auto due = next_ticket(sh)) {
    if (*due > Clock::now()) std::this_thread::sleep_until(*due);
    if (sh.stop != nullptr && sh.stop->load(std::memory_order_relaxed)) break;
    // Open loop: latency counts from when the request was due, so a stalled server cannot hide
    // the queueing it causes (coordinated omission).
    const auto sent = Clock::now();
    const auto t0 = sh.cfg.rate > 0 ? *due : sent;
    const std::string& request = sh.requests[sent_count++ % sh.requests.size()];
    const Failure f = one_request(sh, r, conn, request, expect);
    // --warmup: what completes before the measured window opens counts nowhere.
    if (Clock::now() < sh.measured_from) continue;
    ++r.requests;
    if (f == Failure::none) {
      ++r.ok;
      const auto done = Clock::now();
      r.latency.record(micros(done - t0));
      if (r.latency_uncorrected) r.latency_uncorrected->record(micros(done - sent));
      sh.ok.fetch_add(1, std::memory_order_relaxed);
    } else {
      ++r.failures[static_cast<std::size_t>(f)];
      // A failing connect in a tight loop would only burn the ports or descriptors it lacks.
      if (r.out_of_ports + r.out_of_fds > 0 && !conn) std::this_thread::sleep_for(Millis{1});
    }
    sh.done.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace

LoadResult run_load(const ClientConfig& cfg, const Target& target,
                    const std::function<void(const Progress&)>& on_tick, RunControl control) {
  Shared sh{cfg, target, {}, Clock::now(), Clock::time_point::max()};
  for (const auto& m : cfg.messages) sh.requests.push_back(m + "\n");
  if (sh.requests.empty()) sh.requests.push_back(cfg.msg + "\n");
  const auto warmup =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(cfg.warmup_s));
  sh.measured_from = sh.start + warmup;
  sh.first = std::move(control.first);
  sh.stop = control.stop;
  if (cfg.duration_s) {
    sh.end = sh.measured_from + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(*cfg.duration_s));
  }
  if (!cfg.duration_s) {
    sh.max_tickets = cfg.count;
  } else if (cfg.rate > 0) {
    sh.max_tickets = static_cast<uint64_t>((*cfg.duration_s + cfg.warmup_s) * cfg.rate + 1e-9);
  }
  const auto wall_start = std::chrono::system_clock::now();
  std::vector<LoadResult> results(cfg.concurrency);
  if (cfg.rate > 0) {
    for (auto& r : results) r.latency_uncorrected.emplace();
  }
  std::vector<std::thread> threads;
  threads.reserve(cfg.concurrency);
  std::mutex mu;
  std::condition_variable cv;
  unsigned running = cfg.concurrency;
  for (unsigned i = 0; i < cfg.concurrency; ++i) {
    threads.emplace_back([&, i] {
      worker(sh, results[i]);
      std::lock_guard lock(mu);
      if (--running == 0) cv.notify_all();
    });
  }
  {
    std::unique_lock lock(mu);
    auto next = sh.start + std::chrono::seconds(1);
    while (!cv.wait_until(lock, next, [&] { return running == 0; })) {
      const double secs = std::chrono::duration<double>(Clock::now() - sh.start).count();
      lock.unlock();
      on_tick(Progress{sh.done.load(), sh.ok.load(), secs});
      lock.lock();
      next += std::chrono::seconds(1);
    }
  }
  for (auto& t : threads) t.join();
  LoadResult total;
  total.started_at = wall_start;
  total.seconds = std::chrono::duration<double>(Clock::now() - sh.measured_from).count();
  if (cfg.rate > 0) {
    const uint64_t scheduled = std::min(sh.tickets.load(), sh.max_tickets);
    total.seconds =
        std::max(total.seconds, static_cast<double>(scheduled) / cfg.rate - cfg.warmup_s);
    total.latency_uncorrected.emplace();
  }
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

}  // namespace tcpd

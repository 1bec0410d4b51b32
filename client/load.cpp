#include "load.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

#include "cpu_time.hpp"
#include "load_loop.hpp"

namespace tcpd {
namespace {

Clock::duration seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

}  // namespace

// Without --keepalive every request opens a connection, and tcpc closes it first, so its port
// waits in TIME_WAIT; Linux hands it to a new connection to the same address and port only
// after a second (net.ipv4.tcp_tw_reuse = 2, on loopback) and connect() tries the even ports
// first. One source address then sustains about 14,000 connections a second: past that,
// connect() scans the range, tcpc's core saturates, and every server measured the same
// 14.3k/s. 64 addresses put that ceiling past any server's rate.
constexpr uint64_t kOneShotSources = 64;

std::vector<sockaddr_storage> loopback_sources(const Target& target, uint64_t connections,
                                               bool keepalive) {
  std::vector<sockaddr_storage> out;
  const auto* in4 = reinterpret_cast<const sockaddr_in*>(&target.addr);
  if (target.addr.ss_family != AF_INET || (ntohl(in4->sin_addr.s_addr) >> 24) != 127) return out;
  unsigned lo = 32768;
  unsigned hi = 60999;
  if (std::FILE* f = std::fopen("/proc/sys/net/ipv4/ip_local_port_range", "r")) {
    if (std::fscanf(f, "%u %u", &lo, &hi) != 2) hi = lo + 28231;
    std::fclose(f);
  }
  const uint64_t per_source = (hi - lo + 1) * 9 / 10;  // leave room for TIME_WAIT and others
  uint64_t n = (connections + per_source - 1) / per_source;
  if (!keepalive) n = std::max(n, kOneShotSources);
  if (n <= 1) return out;
  n = std::min<uint64_t>(n, 250);
  for (uint64_t i = 0; i < n; ++i) {
    sockaddr_storage ss{};
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(0x7f000001U + static_cast<uint32_t>(i));
    out.push_back(ss);
  }
  return out;
}

namespace {

// --proxy-header: what a balancer would put before a client's bytes (client 192.0.2.1:40000,
// HAProxy's doc/proxy-protocol.txt).
std::string proxy_header(int version) {
  if (version == 1) return "PROXY TCP4 192.0.2.1 127.0.0.1 40000 12345\r\n";
  static const char v2[] =
      "\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c"
      "\xc0\x00\x02\x01\x7f\x00\x00\x01\x9c\x40\x30\x39";
  return {v2, sizeof v2 - 1};
}

// The run's schedule: requests, the measured window, how many requests to schedule.
void plan(RunState& run, const ClientConfig& cfg) {
  for (const auto& m : cfg.messages) run.requests.push_back(m + "\n");
  if (run.requests.empty()) run.requests.push_back(cfg.msg + "\n");
  // One request per connection without --keepalive: the header goes before each.
  if (cfg.proxy_header != 0) {
    for (auto& r : run.requests) r = proxy_header(cfg.proxy_header) + r;
  }
  Schedule& s = run.schedule;
  s.rate = cfg.rate;
  run.measured_from = s.start + seconds(cfg.warmup_s);
  if (cfg.duration_s) s.end = run.measured_from + seconds(*cfg.duration_s);
  if (!cfg.duration_s) {
    s.max_tickets = cfg.count;
  } else if (cfg.rate > 0) {
    s.max_tickets = static_cast<uint64_t>((*cfg.duration_s + cfg.warmup_s) * cfg.rate + 1e-9);
  }
  run.threads = load_threads(cfg);
  run.sources = loopback_sources(run.target, cfg.concurrency, cfg.keepalive);
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
    total.last_done = std::max(total.last_done, r.last_done);
    total.latency.merge(r.latency);
    if (r.latency_uncorrected) total.latency_uncorrected->merge(*r.latency_uncorrected);
  }
  return total;
}

// The event loops of one run and the calling thread's watch over them: a tick every second
// (every --interval, with its figures) until the last loop has finished.
class Run {
 public:
  Run(RunState& run, const ClientConfig& cfg) : run_(run), cfg_(cfg), results_(run.threads) {
    if (cfg.rate > 0) {
      for (auto& r : results_) r.latency_uncorrected.emplace();
    }
    if (cfg.interval_s > 0) {
      for (unsigned i = 0; i < run.threads; ++i) windows_.push_back(std::make_unique<Window>());
    }
    running_ = run.threads;
    threads_.reserve(run.threads);
    for (unsigned i = 0; i < run.threads; ++i) {
      Window* window = windows_.empty() ? nullptr : windows_[i].get();
      threads_.emplace_back([this, i, window] {
        try {
          run_loop(run_, i, results_[i], window);
        } catch (const std::exception& e) {
          std::lock_guard lock(mu_);
          if (error_.empty()) error_ = e.what();
        }
        std::lock_guard lock(mu_);
        if (--running_ == 0) cv_.notify_all();
      });
    }
  }

  void watch(const std::function<void(const Progress&)>& on_tick) {
    const auto period = cfg_.interval_s > 0 ? seconds(cfg_.interval_s) : seconds(1);
    std::unique_lock lock(mu_);
    auto next = run_.measured_from + period;
    while (!cv_.wait_until(lock, next, [&] { return running_ == 0; })) {
      lock.unlock();
      Progress p{run_.done.load(), run_.ok.load(), since(run_.schedule.start)};
      if (!windows_.empty()) {
        intervals_.push_back(close_interval(
            windows_, std::chrono::duration<double>(next - run_.measured_from).count(),
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
    if (!error_.empty()) throw std::runtime_error(error_);
    if (!windows_.empty()) {
      // The last, partial interval.
      const double open = since(run_.measured_from);
      const double last_end = intervals_.empty() ? 0 : intervals_.back().end_s;
      if (open > last_end + 1e-3) {
        intervals_.push_back(close_interval(windows_, open, open - last_end));
      }
    }
    LoadResult total = merge_results(results_, cfg_.rate > 0);
    total.intervals = std::move(intervals_);
    total.threads = run_.threads;
    return total;
  }

 private:
  static double since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
  }

  RunState& run_;
  const ClientConfig& cfg_;
  std::vector<LoadResult> results_;
  std::vector<std::unique_ptr<Window>> windows_;
  std::vector<IntervalStats> intervals_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  unsigned running_ = 0;
  std::string error_;
};

}  // namespace

unsigned load_threads(const ClientConfig& cfg) {
  unsigned n = cfg.threads;
  if (n == 0) {
    // The CPUs this process may run on (taskset, cgroup cpusets), not all the machine's.
    cpu_set_t set;
    CPU_ZERO(&set);
    n = ::sched_getaffinity(0, sizeof set, &set) == 0
            ? static_cast<unsigned>(CPU_COUNT(&set))
            : std::max(1U, std::thread::hardware_concurrency());
  }
  return static_cast<unsigned>(std::min<uint64_t>(n, cfg.concurrency));
}

std::optional<std::string> reserve_descriptors(const ClientConfig& cfg) {
  // A connection each, an epoll set per loop, and room for the standard streams, the runtime
  // and the --histogram file.
  const uint64_t needed = uint64_t{cfg.concurrency} + load_threads(cfg) + 32;
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= needed) return std::nullopt;
  const rlim_t want = std::min<rlim_t>(needed, rl.rlim_max);
  rl.rlim_cur = want;
  if (::setrlimit(RLIMIT_NOFILE, &rl) == 0 && want >= needed) return std::nullopt;
  return fmt::format(
      "--concurrency {} needs about {} file descriptors, but the limit is {}: out of file "
      "descriptors. Raise it (ulimit -n {}, or LimitNOFILE= under systemd) or lower "
      "--concurrency",
      cfg.concurrency, needed, rl.rlim_max, needed);
}

LoadResult run_load(const ClientConfig& cfg, const Target& target,
                    const std::function<void(const Progress&)>& on_tick, RunControl control) {
  RunState run(cfg, target);
  run.schedule.start = Clock::now();
  plan(run, cfg);
  run.first = std::move(control.first);
  run.stop = control.stop;
  const auto wall_start = std::chrono::system_clock::now();
  Run loops(run, cfg);
  loops.watch(on_tick);
  LoadResult total = loops.finish();
  total.started_at = wall_start;
  total.client_cpu_s = process_cpu_seconds();
  rusage ru{};
  if (::getrusage(RUSAGE_SELF, &ru) == 0) total.client_max_rss_kib = ru.ru_maxrss;
  const auto end = total.last_done > run.measured_from ? total.last_done : Clock::now();
  total.seconds = std::chrono::duration<double>(end - run.measured_from).count();
  if (cfg.rate > 0) {
    if (cfg.duration_s && !run.stopped()) {
      total.unsent =
          run.schedule.max_tickets - std::min(run.schedule.max_tickets, run.open_tickets.load());
    }
    // With --rate the window is at least the scheduled span, so finishing early is not rps.
    const auto scheduled = static_cast<double>(run.open_tickets.load());
    total.seconds = std::max(total.seconds, scheduled / cfg.rate - cfg.warmup_s);
  }
  return total;
}

}  // namespace tcpd

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
#include <variant>
#include <vector>

#include "cpu_time.hpp"
#include "load_loop.hpp"
#include "msg_template.hpp"
#include "socket.hpp"
#include "value_checks.hpp"

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

std::variant<Target, std::string> source_address(const std::string& text, int family) {
  Target t;
  auto* in4 = reinterpret_cast<sockaddr_in*>(&t.addr);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&t.addr);
  if (::inet_pton(AF_INET, text.c_str(), &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    t.len = sizeof(sockaddr_in);
  } else if (::inet_pton(AF_INET6, strip_brackets(text).c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    t.len = sizeof(sockaddr_in6);
  } else {
    return fmt::format("--source {}: not an IPv4 or IPv6 address", text);
  }
  if (t.addr.ss_family != family) {
    return fmt::format("--source {}: an IPv{} address, but the target is IPv{}", text,
                       family == AF_INET ? 6 : 4, family == AF_INET ? 4 : 6);
  }
  return t;
}

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

std::string escape_braces(const std::string& text) {
  std::string out;
  for (char c : text) {
    out += c;
    if (c == '{' || c == '}') out += c;
  }
  return out;
}

bool on_loopback(const Target& t) {
  const auto* in4 = reinterpret_cast<const sockaddr_in*>(&t.addr);
  return t.addr.ss_family == AF_INET && (ntohl(in4->sin_addr.s_addr) >> 24) == 127;
}

// --source's addresses, or, when every target is on 127/8, as many as the run needs
// (loopback_sources).
std::vector<Target> source_addresses(const ClientConfig& cfg, const std::vector<Target>& targets) {
  std::vector<Target> out;
  for (const std::string& a : cfg.sources) {
    auto src = source_address(a, targets.front().addr.ss_family);
    if (auto* why = std::get_if<std::string>(&src)) throw std::invalid_argument(*why);
    out.push_back(std::get<Target>(src));
  }
  if (!out.empty()) return out;
  if (!std::all_of(targets.begin(), targets.end(), on_loopback)) return out;
  for (const sockaddr_storage& ss :
       loopback_sources(targets.front(), cfg.concurrency, cfg.keepalive)) {
    out.push_back({ss, sizeof(sockaddr_in)});
  }
  return out;
}

// The run's schedule: requests, the measured window, how many requests to schedule.
void plan(RunState& run, const ClientConfig& cfg) {
  std::vector<std::string> texts = cfg.messages;
  if (texts.empty()) texts.push_back(cfg.msg);
  for (auto& t : texts) {
    // One request per connection without --keepalive: the header goes before each. Its bytes
    // are escaped so that the template leaves them as they are.
    const std::string header = cfg.proxy_header != 0 ? proxy_header(cfg.proxy_header) : "";
    auto parsed = MessageTemplate::parse(escape_braces(header) + t + "\n");
    if (auto* why = std::get_if<std::string>(&parsed)) throw std::invalid_argument(*why);
    run.requests.push_back(std::get<MessageTemplate>(std::move(parsed)));
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
  run.sources = source_addresses(cfg, run.targets);
}

// Interval length: --interval, or 1 s for --hlog alone; 0: no intervals.
double interval_of(const ClientConfig& cfg) {
  if (cfg.interval_s > 0) return cfg.interval_s;
  return cfg.hlog_file.empty() ? 0 : 1.0;
}

// Takes every thread's window: the figures of the interval that just ended at `end_s`.
IntervalStats close_interval(std::vector<std::unique_ptr<Window>>& windows, double end_s,
                             double length, Histogram& merged) {
  merged = Histogram();
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
LoadResult merge_results(const std::vector<LoadResult>& results) {
  LoadResult total;
  for (const auto& r : results) accumulate(total, r);
  return total;
}

// The event loops of one run and the calling thread's watch over them: a tick every second
// (every --interval, with its figures) until the last loop has finished.
class Run {
 public:
  Run(RunState& run, const ClientConfig& cfg) : run_(run), cfg_(cfg), results_(run.threads) {
    for (auto& r : results_) {
      if (cfg.rate > 0) r.latency_uncorrected.emplace();
      if (cfg.rate > 0) r.send_lateness.emplace();
      for (const Endpoint& e : cfg.endpoints()) r.targets.push_back({host_port(e.host, e.port)});
    }
    if (interval_of(cfg) > 0) {
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
    const auto period = interval_of(cfg_) > 0 ? seconds(interval_of(cfg_)) : seconds(1);
    std::unique_lock lock(mu_);
    auto next = run_.measured_from + period;
    while (!cv_.wait_until(lock, next, [&] { return running_ == 0; })) {
      lock.unlock();
      Progress p{run_.done.load(), run_.ok.load(), since(run_.schedule.start)};
      if (!windows_.empty()) {
        intervals_.push_back(close_interval(
            windows_, std::chrono::duration<double>(next - run_.measured_from).count(),
            interval_of(cfg_), interval_latency_));
        p.interval = &intervals_.back();
        p.interval_latency = &interval_latency_;
      }
      on_tick(p);
      lock.lock();
      next += period;
    }
  }

  // `on_tick` gets the last, partial interval.
  LoadResult finish(const std::function<void(const Progress&)>& on_tick) {
    for (auto& t : threads_) t.join();
    if (!error_.empty()) throw std::runtime_error(error_);
    if (!windows_.empty()) {
      const double open = since(run_.measured_from);
      const double last_end = intervals_.empty() ? 0 : intervals_.back().end_s;
      if (open > last_end + 1e-3) {
        intervals_.push_back(close_interval(windows_, open, open - last_end, interval_latency_));
        Progress p{run_.done.load(), run_.ok.load(), since(run_.schedule.start)};
        p.interval = &intervals_.back();
        p.interval_latency = &interval_latency_;
        on_tick(p);
      }
    }
    LoadResult total = merge_results(results_);
    // Intervals kept only for --interval: --hlog alone writes them as they end.
    if (cfg_.interval_s > 0) total.intervals = std::move(intervals_);
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
  Histogram interval_latency_;  // the interval just closed, merged
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  unsigned running_ = 0;
  std::string error_;
};

}  // namespace

void accumulate(LoadResult& total, const LoadResult& part) {
  total.requests += part.requests;
  total.ok += part.ok;
  for (std::size_t k = 0; k < total.failures.size(); ++k) total.failures[k] += part.failures[k];
  total.out_of_ports += part.out_of_ports;
  total.out_of_fds += part.out_of_fds;
  total.reconnects += part.reconnects;
  total.unsent += part.unsent;
  total.bytes_sent += part.bytes_sent;
  total.bytes_received += part.bytes_received;
  total.last_done = std::max(total.last_done, part.last_done);
  total.latency.merge(part.latency);
  auto add = [](std::optional<Histogram>& to, const std::optional<Histogram>& from) {
    if (!from) return;
    if (!to) to.emplace();
    to->merge(*from);
  };
  add(total.latency_uncorrected, part.latency_uncorrected);
  add(total.send_lateness, part.send_lateness);
  for (const TargetCounts& t : part.targets) {
    auto it = std::find_if(total.targets.begin(), total.targets.end(),
                           [&](const TargetCounts& x) { return x.name == t.name; });
    if (it == total.targets.end()) {
      total.targets.push_back(t);
    } else {
      it->requests += t.requests;
      it->ok += t.ok;
    }
  }
}

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

LoadResult run_load(const ClientConfig& cfg, const std::vector<Target>& targets,
                    const std::function<void(const Progress&)>& on_tick, RunControl control) {
  RunState run(cfg, targets);
  run.schedule.start = Clock::now();
  plan(run, cfg);
  run.firsts = std::move(control.firsts);
  run.stop = control.stop;
  const auto wall_start = std::chrono::system_clock::now();
  Run loops(run, cfg);
  loops.watch(on_tick);
  LoadResult total = loops.finish(on_tick);
  total.started_at = wall_start;
  total.window_start = wall_start + std::chrono::duration_cast<std::chrono::system_clock::duration>(
                                        std::chrono::duration<double>(cfg.warmup_s));
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

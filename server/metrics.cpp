#include "metrics.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fmt/format.h>

#include <fstream>
#include <iterator>
#include <sstream>

#include "cpu_time.hpp"
#include "version.hpp"

namespace tcpd {
namespace {

using Out = std::back_insert_iterator<std::string>;

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  fmt::format_to(Out(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

// A counter with one label: values[i] under label="name_of(i)".
template <typename Values, typename NameOf>
void labelled(std::string& out, std::string_view name, std::string_view help,
              std::string_view label, const Values& values, NameOf name_of) {
  header(out, name, "counter", help);
  for (std::size_t i = 0; i < values.size(); ++i) {
    fmt::format_to(Out(out), "{}{{{}=\"{}\"}} {}\n", name, label, name_of(i), values[i]);
  }
}

void metric(std::string& out, std::string_view name, std::string_view type, std::string_view help,
            double value) {
  header(out, name, type, help);
  fmt::format_to(Out(out), "{} {}\n", name, value);
}

void histogram(std::string& out, std::string_view name, std::string_view help,
               const HistogramSnapshot& h) {
  header(out, name, "histogram", help);
  uint64_t cumulative = 0;
  for (std::size_t i = 0; i < kLatencyBounds.size(); ++i) {
    cumulative += h.buckets[i];
    fmt::format_to(Out(out), "{}_bucket{{le=\"{}\"}} {}\n", name, kLatencyBounds[i], cumulative);
  }
  fmt::format_to(Out(out), "{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, h.count,
                 name, h.sum_seconds, name, h.count);
}

struct ProcessInfo {
  double start_time = 0;
  double cpu_seconds = 0;
  double resident_bytes = 0;
  double virtual_bytes = 0;
  double open_fds = 0;
  double max_fds = 0;
};

// Seconds since the epoch when this process started: its start in clock ticks after boot
// (/proc/self/stat, field 22) plus the boot time (/proc/stat btime).
double start_time() {
  std::ifstream stat("/proc/self/stat");
  std::string all((std::istreambuf_iterator<char>(stat)), {});
  const auto paren = all.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream fields(all.substr(paren + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 22 && fields >> field; ++i) {
    if (i == 22) ticks = std::stod(field);
  }
  std::ifstream boot("/proc/stat");
  std::string key;
  double btime = 0;
  while (boot >> key) {
    if (key == "btime") {
      boot >> btime;
      break;
    }
  }
  return btime + ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

ProcessInfo process_info() {
  ProcessInfo p;
  static const double started = start_time();
  p.start_time = started;
  p.cpu_seconds = process_cpu_seconds();
  std::ifstream statm("/proc/self/statm");
  double pages_virtual = 0, pages_resident = 0;
  statm >> pages_virtual >> pages_resident;
  const auto page = static_cast<double>(::sysconf(_SC_PAGESIZE));
  p.virtual_bytes = pages_virtual * page;
  p.resident_bytes = pages_resident * page;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    int n = 0;
    while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.' ? 1 : 0;
    ::closedir(d);
    p.open_fds = n - 1;  // the directory's own descriptor
  }
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0) p.max_fds = static_cast<double>(rl.rlim_cur);
  return p;
}

void connections(std::string& out, const StatsSnapshot& s) {
  metric(out, "tcpd_connections_accepted_total", "counter", "Connections accepted.",
         static_cast<double>(s.accepted));
  labelled(out, "tcpd_connections_closed_total",
           "Connections closed, by how they ended (they add up to accepted minus open).", "outcome",
           s.outcomes, [](std::size_t i) { return outcome_name(static_cast<Outcome>(i)); });
  metric(out, "tcpd_connections_open", "gauge", "Connections accepted and not yet closed.",
         static_cast<double>(s.open()));
  metric(out, "tcpd_requests_total", "counter", "Replies written.",
         static_cast<double>(s.requests));
  metric(out, "tcpd_oneshot_replies_total", "counter",
         "Of those, one-shot replies: a request without a newline followed by --oneshot-wait-ms "
         "of silence, answered without a newline and closed.",
         static_cast<double>(s.one_shot_replies));
  metric(out, "tcpd_bytes_received_total", "counter", "Bytes received from clients.",
         static_cast<double>(s.bytes_in));
  metric(out, "tcpd_bytes_sent_total", "counter", "Bytes sent to clients.",
         static_cast<double>(s.bytes_out));
}

void gauges(std::string& out, const Gauges& g) {
  metric(out, "tcpd_sessions_parked", "gauge",
         "Sessions waiting for their client without a worker.", static_cast<double>(g.parked));
  metric(out, "tcpd_queue_depth", "gauge",
         "New connections waiting for a worker (at most tcpd_queue_capacity).",
         static_cast<double>(g.queue_depth));
  metric(out, "tcpd_queue_handed_on", "gauge",
         "Sessions read already, handed by one worker to the next free one (not bounded by the "
         "queue's capacity: at most a batch per worker, and the drain's).",
         static_cast<double>(g.queue_handed_on));
  metric(out, "tcpd_queue_capacity", "gauge", "New connections that may wait for a worker.",
         static_cast<double>(g.queue_capacity));
  metric(out, "tcpd_workers", "gauge", "Worker threads.", static_cast<double>(g.workers));
  metric(out, "tcpd_workers_busy", "gauge", "Worker threads serving sessions now.",
         static_cast<double>(g.workers_busy));
  metric(out, "tcpd_clients_tracked", "gauge",
         "Client addresses (IPv6: /64s) with open connections counted against "
         "--max-conns-per-client.",
         static_cast<double>(g.clients_tracked));
  metric(out, "tcpd_log_lines_dropped_total", "counter",
         "Log lines dropped because the log sink was not keeping up.",
         static_cast<double>(g.log_dropped));
}

void process(std::string& out) {
  const ProcessInfo p = process_info();
  metric(out, "process_start_time_seconds", "gauge",
         "Start time of the process since unix epoch in seconds.", p.start_time);
  metric(out, "process_cpu_seconds_total", "counter",
         "Total user and system CPU time spent in seconds.", p.cpu_seconds);
  metric(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
         p.resident_bytes);
  metric(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
         p.virtual_bytes);
  metric(out, "process_open_fds", "gauge", "Number of open file descriptors.", p.open_fds);
  metric(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.", p.max_fds);
}

void datagrams(std::string& out, const UdpSnapshot& u) {
  metric(out, "tcpd_udp_datagrams_received_total", "counter",
         "UDP datagrams that reached tcpd's sockets (read, or dropped by the kernel for want of "
         "buffer room): sent plus dropped.",
         static_cast<double>(u.received));
  metric(out, "tcpd_udp_datagrams_sent_total", "counter", "UDP replies sent to requests served.",
         static_cast<double>(u.sent));
  labelled(out, "tcpd_udp_datagrams_dropped_total",
           "UDP datagrams not served, by reason (too_long ones get ERR too long).", "reason",
           u.dropped, [](std::size_t i) { return udp_drop_name(static_cast<UdpDrop>(i)); });
  metric(out, "tcpd_udp_bytes_received_total", "counter", "UDP payload bytes read.",
         static_cast<double>(u.bytes_in));
  metric(out, "tcpd_udp_bytes_sent_total", "counter", "UDP payload bytes sent in replies served.",
         static_cast<double>(u.bytes_out));
  histogram(out, "tcpd_udp_request_duration_seconds",
            "From a batch of datagrams read to its replies sent.", u.request_duration);
}

}  // namespace

std::string render_metrics(const StatsSnapshot& stats, const Gauges& g,
                           const std::optional<UdpSnapshot>& udp) {
  std::string out;
  out.reserve(8192);
  connections(out, stats);
  gauges(out, g);
  histogram(out, "tcpd_request_duration_seconds",
            "From a request's first byte received to its reply written.", stats.request_duration);
  histogram(out, "tcpd_queue_wait_seconds",
            "From a connection or session queued to taken by a worker.", stats.queue_wait);
  if (udp) datagrams(out, *udp);
  header(out, "tcpd_build_info", "gauge", "The running version.");
  fmt::format_to(Out(out), "tcpd_build_info{{version=\"{}\"}} 1\n", kVersion);
  process(out);
  return out;
}

}  // namespace tcpd

#include <fmt/format.h>

#include <malloc.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <optional>
#include <stdexcept>
#include <system_error>

#include "log.hpp"
#include "metrics_http.hpp"
#include "server.hpp"
#include "signals.hpp"
#include "systemd.hpp"
#include "tcpd_cli.hpp"

namespace {

std::string status_line(const tcpd::Server& server) {
  const auto s = server.stats();
  return fmt::format("STATUS=open={} accepted={} requests={} parked={}", s.open(), s.accepted,
                     s.requests, server.parked());
}

int serve(tcpd::ServerConfig config) {
  const tcpd::Notifier notify;
  const tcpd::InheritedSockets inherited = tcpd::inherited_sockets();
  config.listen_fd = inherited.tcp;
  config.udp_fd = inherited.udp;
  if (inherited.udp >= 0 && !config.udp) {
    throw std::runtime_error(
        "socket activation passed a UDP socket (ListenDatagram=); serve it with --udp");
  }
  if (config.listen_fd >= 0 && config.address_given) {
    tcpd::log_at(tcpd::LogLevel::warn,
                 "socket activation: serving the inherited socket; --bind/--port are ignored");
  }
  tcpd::Server server(config);
  std::unique_ptr<tcpd::MetricsServer> metrics;
  if (!config.metrics.empty()) {
    metrics = std::make_unique<tcpd::MetricsServer>(config.metrics, [&server] {
      return render_metrics(server.stats(), server.gauges(), server.udp_stats());
    });
  }
  // Every thread runs before the server is announced: a pool that cannot be completed is an
  // error here, not a server that listens and answers nobody.
  server.start();
  if (metrics) metrics->start();
  tcpd::SignalThread signals(
      [&server, &notify] {
        notify.send("STOPPING=1");
        server.stop();
      },
      [&server] {
        tcpd::log_counters(
            "stats", fmt::format("{} log_dropped={}", server.counters(), tcpd::log_dropped()));
      },
      notify.enabled() ? std::function<void()>([&] { notify.send(status_line(server)); })
                       : std::function<void()>());
  // Scripts read the port from this line, so it goes out before anything can block.
  fmt::print("listening on {}\n", server.address());
  std::fflush(stdout);
  if (config.udp) tcpd::log_always("udp on {}", server.address());
  if (metrics) tcpd::log_always("metrics on http://{}/metrics", metrics->address());
  notify.send("READY=1\n" + status_line(server));
  server.run();
  tcpd::log_counters("summary",
                     fmt::format("{} log_dropped={}", server.counters(), tcpd::log_dropped()));
  return 0;
}

}  // namespace

int main(int argc, char* argv[]) try {
  auto parsed = tcpd::parse_server_cli(argc, argv);
  if (auto* done = std::get_if<tcpd::CliExit>(&parsed)) {
    std::fputs(done->text.c_str(), done->code == 0 ? stdout : stderr);
    return done->code;
  }
  // glibc gives each thread that allocates its own arena; with a fixed pool that only costs
  // resident memory, since workers allocate little and rarely contend.
  mallopt(M_ARENA_MAX, 2);
  const auto& config = std::get<tcpd::ServerConfig>(parsed);
  tcpd::log_configure(config.log_format, config.log_level, config.name);
  // Outlives everything that logs, and ends with a bounded flush even if stderr is blocked.
  std::optional<tcpd::LogWriter> log;
  try {
    // Before any thread starts, so that every thread inherits the mask and only the signal
    // thread takes them.
    tcpd::block_server_signals();
    log.emplace(STDERR_FILENO);
    return serve(config);
  } catch (const std::exception& e) {
    // Setup failures are std::system_error naming the address or resource and the errno text.
    tcpd::log_at(tcpd::LogLevel::error, "{}", e.what());
    return 1;
  }
} catch (const std::exception& e) {
  // Before the log exists (parsing the flags, configuring the log): out of memory at most.
  std::fprintf(stderr, "tcpd: %s\n", e.what());
  return 1;
}

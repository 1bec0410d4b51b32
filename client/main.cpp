#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>

#include "exchange.hpp"
#include "load.hpp"
#include "report.hpp"
#include "socket.hpp"
#include "tcpc_cli.hpp"
#include "thresholds.hpp"
#include "udp_load.hpp"
#include "udp_report.hpp"
#include "udp_single.hpp"

namespace {

using tcpd::ClientConfig;
using tcpd::endpoint;

int fail(const std::string& message) {
  std::fprintf(stderr, "tcpc: %s\n", message.c_str());
  return 1;
}

std::string connect_error(const ClientConfig& cfg, const tcpd::ConnectResult& c) {
  std::string why = !c.detail.empty() ? c.detail
                    : c.error == ETIMEDOUT
                        ? fmt::format("timed out after {} ms", cfg.timeout.count())
                        : std::string(std::strerror(c.error));
  return fmt::format("cannot connect to {}: {}", endpoint(cfg), why);
}

std::string reply_error(const ClientConfig& cfg, const tcpd::ReplyResult& r) {
  using tcpd::Failure;
  switch (r.failure) {
    case Failure::busy: return fmt::format("{} is busy: {}", endpoint(cfg), r.reply);
    case Failure::too_long:
      return fmt::format("{} refused the request: {}", endpoint(cfg), r.reply);
    case Failure::mismatch:
      return fmt::format("unexpected reply from {}: \"{}\" (expected \"{}\")", endpoint(cfg),
                         r.reply, cfg.expect.value_or(""));
    case Failure::timeout:
      return fmt::format("no reply from {} within {} ms", endpoint(cfg), cfg.timeout.count());
    case Failure::reset: return fmt::format("connection to {} reset by the server", endpoint(cfg));
    case Failure::reply_too_long:
      return fmt::format("the reply from {} is longer than --max-reply {} bytes", endpoint(cfg),
                         cfg.max_reply);
    default:
      if (r.closed) return fmt::format("{} closed the connection without replying", endpoint(cfg));
      return fmt::format("error talking to {}: {}", endpoint(cfg), std::strerror(r.err));
  }
}

// One connection; one request from --msg, or one per stdin line.
int run_single(const ClientConfig& cfg) {
  auto c = tcpd::connect_tcp(cfg.host, cfg.port, tcpd::Clock::now() + cfg.timeout);
  if (!c.fd) return fail(connect_error(cfg, c));
  tcpd::Connection conn(std::move(c.fd), cfg.timeout, cfg.max_reply);
  const std::string* expect = cfg.expect ? &*cfg.expect : nullptr;
  auto one = [&](const std::string& msg) -> int {
    tcpd::ReplyResult r = conn.request(msg + "\n");
    if (r.failure == tcpd::Failure::none) r.failure = tcpd::classify_reply(r.reply, expect);
    if (r.failure != tcpd::Failure::none) return fail(reply_error(cfg, r));
    if (!cfg.quiet) {
      std::fwrite(r.reply.data(), 1, r.reply.size(), stdout);
      std::fputc('\n', stdout);
      std::fflush(stdout);
    }
    return r.closed ? -1 : 0;
  };
  if (!cfg.stdin_mode()) {
    int rc = one(cfg.msg);
    return rc < 0 ? 0 : rc;
  }
  std::string line;
  while (std::getline(std::cin, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    int rc = one(line);
    if (rc > 0) return rc;
    if (rc < 0) {
      // The server answered one-shot style and closed; nothing more can be sent.
      if (std::cin.peek() != EOF)
        return fail(fmt::format("{} closed the connection", endpoint(cfg)));
      break;
    }
  }
  return 0;
}

// SIGINT/SIGTERM in load mode: the first ends the run and keeps its results; a second exits at
// once. The handler only stores and calls _exit, both async-signal-safe.
std::atomic<bool> g_stop{false};
std::atomic<int> g_signal{0};

void on_stop_signal(int sig) {
  if (g_stop.exchange(true)) ::_exit(128 + sig);
  g_signal.store(sig);
}

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // the event loops look at g_stop at least every 50 ms
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

// --json prints one object whatever happens: a run that could not start says why.
int fail_load(const ClientConfig& cfg, const std::string& message) {
  if (cfg.json) {
    std::fputs(tcpd::load_error_json(cfg, message).c_str(), stdout);
  }
  return fail(message);
}

// --msg-file: one request per line (a final '\r' dropped), cycled over the run.
std::optional<std::string> read_messages(ClientConfig& cfg) {
  std::ifstream in(cfg.msg_file);
  if (!in) return fmt::format("cannot read --msg-file {}: {}", cfg.msg_file, std::strerror(errno));
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    cfg.messages.push_back(line);
  }
  if (cfg.messages.empty()) return fmt::format("--msg-file {} has no lines", cfg.msg_file);
  return std::nullopt;
}

int run_load_mode(ClientConfig cfg) {
  install_stop_handlers();
  if (!cfg.msg_file.empty()) {
    if (auto error = read_messages(cfg)) return fail_load(cfg, *error);
  }
  if (auto error = tcpd::reserve_descriptors(cfg)) return fail_load(cfg, *error);
  // Resolve once and find the address that answers (localhost may be ::1 or 127.0.0.1). The
  // connection that answers is the run's first connection, not a probe the server would count
  // as a client without a request.
  auto c = tcpd::connect_tcp(cfg.host, cfg.port, tcpd::Clock::now() + cfg.timeout);
  if (!c.fd) return fail_load(cfg, connect_error(cfg, c));
  tcpd::Target target;
  target.len = sizeof target.addr;
  if (::getpeername(c.fd.get(), reinterpret_cast<sockaddr*>(&target.addr), &target.len) != 0) {
    return fail_load(cfg, fmt::format("getpeername: {}", std::strerror(errno)));
  }
  const bool show_progress = !cfg.quiet && ::isatty(STDERR_FILENO) != 0;
  auto tick = [&](const tcpd::Progress& p) {
    if (p.interval != nullptr) {
      const tcpd::IntervalStats& iv = *p.interval;
      std::fprintf(stderr, "tcpc: %7.2f s: %.0f req/s  p50 %llu us  p99 %llu us  %llu errors\n",
                   iv.end_s, iv.rps, static_cast<unsigned long long>(iv.p50_us),
                   static_cast<unsigned long long>(iv.p99_us),
                   static_cast<unsigned long long>(iv.failed));
      return;
    }
    if (!show_progress || p.seconds < 2.0) return;
    std::fprintf(stderr, "tcpc: %.0f s: %llu requests, %llu failed, %.0f req/s\n", p.seconds,
                 static_cast<unsigned long long>(p.requests),
                 static_cast<unsigned long long>(p.requests - p.ok),
                 static_cast<double>(p.ok) / p.seconds);
  };
  tcpd::LoadResult r = tcpd::run_load(cfg, target, tick, {std::move(c.fd), &g_stop});
  r.interrupted = g_stop.load();
  const std::string out =
      cfg.json ? tcpd::load_summary_json(cfg, r) : tcpd::load_summary_text(cfg, r);
  std::fputs(out.c_str(), stdout);
  std::fflush(stdout);
  std::fputs(tcpd::rate_warning(cfg, r).c_str(), stderr);
  if (!cfg.histogram_file.empty()) {
    std::ofstream h(cfg.histogram_file);
    h << tcpd::histogram_text(r.latency);
    if (!h) return fail(fmt::format("cannot write --histogram {}", cfg.histogram_file));
  }
  std::fputs(tcpd::load_hints(r).c_str(), stderr);
  const auto thresholds = tcpd::check_thresholds(cfg, r);
  std::fputs(tcpd::threshold_violations(thresholds).c_str(), stderr);
  if (const int sig = g_signal.load(); sig != 0) return 128 + sig;
  return tcpd::load_exit_status(cfg, r, thresholds);
}

// --udp in load mode: the datagrams go to the first address the host resolves to.
int run_udp_load_mode(const ClientConfig& cfg) {
  install_stop_handlers();
  if (auto error = tcpd::reserve_descriptors(cfg)) return fail_load(cfg, *error);
  auto resolved = tcpd::resolve_udp(cfg);
  if (auto* why = std::get_if<std::string>(&resolved)) return fail_load(cfg, *why);
  const tcpd::Target target = std::get<std::vector<tcpd::Target>>(resolved).front();
  const bool show_progress = !cfg.quiet && ::isatty(STDERR_FILENO) != 0;
  auto tick = [&](const tcpd::Progress& p) {
    if (!show_progress || p.seconds < 2.0) return;
    std::fprintf(stderr, "tcpc: %.0f s: %llu sent, %llu received\n", p.seconds,
                 static_cast<unsigned long long>(p.requests),
                 static_cast<unsigned long long>(p.ok));
  };
  tcpd::UdpLoadResult r = tcpd::run_udp_load(cfg, target, tick, &g_stop);
  r.interrupted = g_stop.load();
  const std::string out =
      cfg.json ? tcpd::udp_summary_json(cfg, r) : tcpd::udp_summary_text(cfg, r);
  std::fputs(out.c_str(), stdout);
  std::fflush(stdout);
  std::fputs(tcpd::udp_warnings(cfg, r).c_str(), stderr);
  if (!cfg.histogram_file.empty()) {
    std::ofstream h(cfg.histogram_file);
    h << tcpd::histogram_text(r.latency);
    if (!h) return fail(fmt::format("cannot write --histogram {}", cfg.histogram_file));
  }
  if (const int sig = g_signal.load(); sig != 0) return 128 + sig;
  return r.lost() == 0 && r.sent > 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char* argv[]) {
  std::signal(SIGPIPE, SIG_IGN);
  try {
    auto parsed = tcpd::parse_client_cli(argc, argv);
    if (auto* done = std::get_if<tcpd::ClientCliExit>(&parsed)) {
      std::fputs(done->text.c_str(), done->code == 0 ? stdout : stderr);
      return done->code;
    }
    const auto& cfg = std::get<ClientConfig>(parsed);
    if (cfg.udp) return cfg.load_mode() ? run_udp_load_mode(cfg) : tcpd::run_udp_single(cfg);
    return cfg.load_mode() ? run_load_mode(cfg) : run_single(cfg);
  } catch (const std::exception& e) {
    // Out of memory or threads: say so in one line rather than abort.
    return fail(e.what());
  }
}

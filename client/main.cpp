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
#include <string_view>
#include <vector>

#include "connect_targets.hpp"
#include "exchange.hpp"
#include "load.hpp"
#include "merge.hpp"
#include "msg_template.hpp"
#include "report.hpp"
#include "run_reporter.hpp"
#include "socket.hpp"
#include "summary_json.hpp"
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
  if (!c.fd) return fail(tcpd::connect_error(cfg, c));
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
    // --msg as a template, for connection 0 and request 0 (stdin lines are sent as they are).
    auto parsed = tcpd::MessageTemplate::parse(cfg.msg);
    std::string msg;
    uint64_t rng = static_cast<uint64_t>(tcpd::Clock::now().time_since_epoch().count()) | 1;
    std::get<tcpd::MessageTemplate>(parsed).render(0, 0, rng, msg);
    int rc = one(msg);
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
    const std::string out =
        cfg.udp ? tcpd::udp_error_json(cfg, message) : tcpd::load_error_json(cfg, message);
    std::fputs(out.c_str(), stdout);
  }
  return fail(message);
}

// --msg-file: one request per line (a final '\r' dropped), cycled over the run.
std::optional<std::string> read_messages(ClientConfig& cfg) {
  std::ifstream in(cfg.msg_file);
  if (!in) return fmt::format("cannot read --msg-file {}: {}", cfg.msg_file, std::strerror(errno));
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    auto parsed = tcpd::MessageTemplate::parse(line);
    if (auto* why = std::get_if<std::string>(&parsed)) {
      return fmt::format("--msg-file {} line {}: {}", cfg.msg_file, n, *why);
    }
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
  std::vector<tcpd::Target> targets;
  tcpd::RunControl control{{}, &g_stop};
  if (auto error = tcpd::find_targets(cfg, targets, control.firsts)) return fail_load(cfg, *error);
  tcpd::RunReporter reporter(cfg);
  if (auto error = reporter.open_hlog()) return fail_load(cfg, *error);
  auto tick = [&](const tcpd::Progress& p) { reporter.tick(p); };
  tcpd::LoadResult r;
  try {
    r = tcpd::run_load(cfg, targets, tick, std::move(control));
  } catch (const std::invalid_argument& e) {
    return fail_load(cfg, e.what());
  }
  r.interrupted = g_stop.load();
  const std::string out =
      cfg.json ? tcpd::load_summary_json(cfg, r) : tcpd::load_summary_text(cfg, r);
  std::fputs(out.c_str(), stdout);
  std::fflush(stdout);
  const std::string missed = tcpd::rate_warning(cfg, r);
  std::fputs((missed.empty() ? tcpd::concurrency_warning(cfg, r) : missed).c_str(), stderr);
  if (!cfg.histogram_file.empty()) {
    std::ofstream h(cfg.histogram_file);
    h << tcpd::histogram_text(r.latency);
    if (!h) return fail(fmt::format("cannot write --histogram {}", cfg.histogram_file));
  }
  std::fputs(tcpd::load_hints(r).c_str(), stderr);
  if (reporter.hlog_failed()) return fail(fmt::format("cannot write --hlog {}", cfg.hlog_file));
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

// The lines of `name` ("-": stdin) as results to merge.
std::optional<std::string> read_runs(const std::string& name, std::vector<tcpd::RunText>& runs) {
  std::ifstream file;
  std::istream* in = &std::cin;
  if (name != "-") {
    file.open(name);
    if (!file) return fmt::format("cannot read {}: {}", name, std::strerror(errno));
    in = &file;
  }
  std::string line;
  std::vector<tcpd::RunText> found;
  for (int n = 1; std::getline(*in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    found.push_back({fmt::format("{}:{}", name, n), line});
  }
  if (found.empty()) return fmt::format("{} holds no result", name);
  if (found.size() == 1) found[0].origin = name;
  runs.insert(runs.end(), found.begin(), found.end());
  return std::nullopt;
}

// tcpc merge of --udp results: exit 1 when any datagram was lost, as a --udp run's.
int merge_udp(const tcpd::MergeConfig& m, const std::vector<tcpd::RunText>& runs) {
  const ClientConfig& l = m.limits;
  if (l.max_p99_ms || l.max_p999_ms || l.min_rps || l.max_failed) {
    return fail("merge: thresholds judge TCP results, and these are --udp results");
  }
  ClientConfig cfg;
  tcpd::UdpLoadResult r;
  try {
    r = tcpd::merge_udp_runs(runs, cfg);
  } catch (const std::runtime_error& e) {
    return fail(fmt::format("merge: {}", e.what()));
  }
  const std::string out = m.text ? tcpd::udp_summary_text(cfg, r) : tcpd::udp_summary_json(cfg, r);
  std::fputs(out.c_str(), stdout);
  std::fflush(stdout);
  if (!r.error.empty()) return fail(r.error);
  return r.lost() == 0 && r.sent > 0 ? 0 : 1;
}

// tcpc merge FILE...: one result from several runs' --json output.
int run_merge(int argc, char* argv[]) {
  auto parsed = tcpd::parse_merge_cli(argc, argv);
  if (auto* done = std::get_if<tcpd::ClientCliExit>(&parsed)) {
    std::fputs(done->text.c_str(), done->code == 0 ? stdout : stderr);
    return done->code;
  }
  const auto& m = std::get<tcpd::MergeConfig>(parsed);
  std::vector<tcpd::RunText> runs;
  for (const std::string& f : m.files) {
    if (auto error = read_runs(f, runs)) return fail(*error);
  }
  if (tcpd::result_protocol(runs.front().json) == "udp") return merge_udp(m, runs);
  ClientConfig cfg = m.limits;
  tcpd::LoadResult r;
  try {
    r = tcpd::merge_runs(runs, cfg);
  } catch (const std::runtime_error& e) {
    return fail(fmt::format("merge: {}", e.what()));
  }
  const std::string out =
      m.text ? tcpd::load_summary_text(cfg, r) : tcpd::load_summary_json(cfg, r);
  std::fputs(out.c_str(), stdout);
  std::fflush(stdout);
  if (!r.error.empty()) return fail(r.error);
  const auto thresholds = tcpd::check_thresholds(cfg, r);
  std::fputs(tcpd::threshold_violations(thresholds).c_str(), stderr);
  return tcpd::load_exit_status(cfg, r, thresholds);
}

}  // namespace

int main(int argc, char* argv[]) {
  std::signal(SIGPIPE, SIG_IGN);
  try {
    if (argc > 1 && std::string_view(argv[1]) == "merge") return run_merge(argc - 1, argv + 1);
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

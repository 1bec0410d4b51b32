#include "tcpc_cli.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "msg_template.hpp"
#include "value_checks.hpp"
#include "version.hpp"

namespace tcpd {
namespace {

// Numeric flags: "abc is not an integer", "0 is not between 0.001 and 86400"; the help shows
// only the value's name (`--port N`), not CLI11's "INT:INT in [1 - 65535]".
CLI::Validator integer(long long lo, long long hi) {
  return {[lo, hi](std::string& v) { return check_integer(v, lo, hi); }, ""};
}
CLI::Validator number(double lo, double hi) {
  return {[lo, hi](std::string& v) { return check_number(v, lo, hi); }, ""};
}

// CLI11's "--rate: 1 required FLOAT missing" as a person would say it.
std::string error_text(const CLI::ParseError& e) {
  std::string what = e.what();
  if (e.get_name() == "ArgumentMismatch" && what.find(" missing") != std::string::npos) {
    what = what.substr(0, what.find(':')) + ": needs a value";
  }
  return "tcpc: " + what + " (see tcpc --help)\n";
}

// "50,99,99.9" into `out`; the first bad item's reason.
std::optional<std::string> parse_percentiles(const std::string& list, std::vector<double>& out) {
  out.clear();
  std::size_t at = 0;
  while (at <= list.size()) {
    const std::size_t comma = std::min(list.find(',', at), list.size());
    const std::string item = list.substr(at, comma - at);
    if (std::string why = check_number(item, 0, 100); !why.empty()) return why;
    out.push_back(std::stod(item));
    at = comma + 1;
  }
  return std::nullopt;
}

// The thresholds as given: each flag may be repeated.
struct ThresholdFlags {
  std::vector<double> max_p99, max_p999, min_rps;
  std::vector<long long> max_failed;
};

void add_threshold_options(CLI::App& app, ThresholdFlags& limits) {
  // One value per occurrence (repeatable), so that `tcpc merge --min-rps 10 a.json` does not
  // take the file for a second value.
  app.add_option("--max-p99-ms", limits.max_p99, "exit 3 unless p99 latency is at most this")
      ->allow_extra_args(false)
      ->type_name("MS")
      ->check(number(0, 86400000.0));
  app.add_option("--max-p999-ms", limits.max_p999, "exit 3 unless p99.9 is at most this")
      ->allow_extra_args(false)
      ->type_name("MS")
      ->check(number(0, 86400000.0));
  app.add_option("--min-rps", limits.min_rps,
                 "exit 3 unless at least this many requests/s succeeded (with --rate: the "
                 "target was met)")
      ->allow_extra_args(false)
      ->type_name("R")
      ->check(number(0, 1e9));
  app.add_option("--max-failed", limits.max_failed,
                 "exit 3 when more requests than this failed; up to it, failures do not make "
                 "the exit status 1")
      ->allow_extra_args(false)
      ->type_name("N")
      ->check(integer(0, 1000000000000LL));
}

bool any_threshold(const ThresholdFlags& f) {
  return !f.max_p99.empty() || !f.max_p999.empty() || !f.min_rps.empty() || !f.max_failed.empty();
}

// Repeated, a threshold takes its strictest value.
void set_thresholds(ClientConfig& cfg, const ThresholdFlags& f) {
  if (!f.max_p99.empty()) cfg.max_p99_ms = *std::min_element(f.max_p99.begin(), f.max_p99.end());
  if (!f.max_p999.empty()) {
    cfg.max_p999_ms = *std::min_element(f.max_p999.begin(), f.max_p999.end());
  }
  if (!f.min_rps.empty()) cfg.min_rps = *std::max_element(f.min_rps.begin(), f.min_rps.end());
  if (!f.max_failed.empty()) {
    cfg.max_failed =
        static_cast<uint64_t>(*std::min_element(f.max_failed.begin(), f.max_failed.end()));
  }
}

// "host:port", "[v6]:port" into an endpoint; why not.
std::variant<Endpoint, std::string> parse_endpoint(const std::string& text) {
  const std::size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return std::string("expected HOST:PORT");
  std::string host = text.substr(0, colon);
  if (host.find(':') != std::string::npos && host.front() != '[') {
    return std::string("write an IPv6 address in brackets: [ADDR]:PORT");
  }
  std::string port = text.substr(colon + 1);
  if (std::string why = check_integer(port, 1, 65535); !why.empty()) return "port " + why;
  return Endpoint{strip_brackets(host), static_cast<uint16_t>(std::stoi(port))};
}

// What --target, --source, --pipeline, --hlog and request templates need.
std::optional<std::string> traffic_conflicts(const ClientConfig& cfg, bool target, bool pipeline) {
  if (cfg.udp && (target || !cfg.sources.empty() || pipeline || !cfg.hlog_file.empty())) {
    return "--target, --source, --pipeline and --hlog are TCP options, not for --udp";
  }
  if (pipeline && !cfg.keepalive) {
    return "--pipeline needs --keepalive (a one-shot connection carries one request)";
  }
  if (cfg.targets.size() > cfg.concurrency) {
    return fmt::format("{} targets need --concurrency {} at least (a connection each)",
                       cfg.targets.size(), cfg.targets.size());
  }
  if (!cfg.sources.empty() && !cfg.load_mode()) return "--source goes with load mode";
  if (!cfg.udp && !cfg.stdin_mode()) {
    auto parsed = MessageTemplate::parse(cfg.msg);
    if (auto* why = std::get_if<std::string>(&parsed)) return "--msg: " + *why;
  }
  return std::nullopt;
}

// What --udp cannot be combined with.
std::optional<std::string> udp_conflicts(const ClientConfig& cfg, bool warmup) {
  if (cfg.keepalive) return "--keepalive has no meaning with --udp";
  if (!cfg.msg_file.empty()) return "--msg-file cannot be combined with --udp";
  if (warmup || cfg.ramp_up_s > 0 || cfg.interval_s > 0) {
    return "--warmup, --ramp-up and --interval are TCP load options, not for --udp";
  }
  if (cfg.size > 65507) return "--size: a UDP datagram holds at most 65507 bytes";
  if (cfg.msg.size() > 65507) return "--msg: a UDP datagram holds at most 65507 bytes";
  return std::nullopt;
}

// Which of the flags whose meaning depends on others were given.
struct Given {
  bool target = false;
  bool pipeline = false;
  bool proxy = false;
  bool warmup = false;
  bool thresholds = false;
};

// --target HOST:PORT..., in place of --host and --port.
std::optional<std::string> set_targets(ClientConfig& cfg, const std::vector<std::string>& targets,
                                       bool host_or_port) {
  if (host_or_port) return "--target replaces --host and --port (see tcpc --help)";
  for (const std::string& t : targets) {
    auto e = parse_endpoint(t);
    if (auto* why = std::get_if<std::string>(&e)) return "--target " + t + ": " + *why;
    cfg.targets.push_back(std::get<Endpoint>(e));
  }
  cfg.host = cfg.targets.front().host;
  cfg.port = cfg.targets.front().port;
  return std::nullopt;
}

// The stderr line for flags that do not go together; nullopt when they do.
std::optional<std::string> combination_error(const ClientConfig& cfg, const Given& g) {
  auto usage = [](const std::string& why) { return "tcpc: " + why + " (see tcpc --help)\n"; };
  if (auto why = traffic_conflicts(cfg, g.target, g.pipeline)) return usage(*why);
  // Thresholds judge a TCP load run only.
  if (g.thresholds && (cfg.udp || !cfg.load_mode())) {
    return usage(
        "thresholds (--max-p99-ms, --max-p999-ms, --min-rps, --max-failed) go with TCP load "
        "mode");
  }
  if (g.proxy && (cfg.keepalive || cfg.udp || !cfg.load_mode())) {
    return "tcpc: --proxy-header goes with one-shot load mode (no --keepalive, no --udp)\n";
  }
  if (cfg.udp) {
    if (auto why = udp_conflicts(cfg, g.warmup)) return usage(*why);
  }
  if (g.warmup && !cfg.duration_s) return usage("--warmup needs --duration");
  if (cfg.stdin_mode() && cfg.load_mode()) {
    return "tcpc: --msg - reads requests from stdin and cannot be combined with load mode\n";
  }
  return std::nullopt;
}

}  // namespace

std::variant<ClientConfig, ClientCliExit> parse_client_cli(int argc, const char* const argv[]) {
  ClientConfig cfg;
  CLI::App app{"tcpc: client and load generator for tcpd's line protocol", "tcpc"};
  app.set_version_flag("--version", std::string("tcpc ") + kVersion);
  app.footer(
      "\ntcpc merge FILE... combines the --json results of several runs into one (see tcpc "
      "merge --help).\nThe JSON schema: docs/tcpc-json.md.");
  int port = cfg.port;
  long long timeout = cfg.timeout.count();
  long long count = 1;
  double duration = 0;
  int concurrency = 1;
  std::string expect;

  app.add_option("--host", cfg.host, "server name or address (IPv4, IPv6, [IPv6])")
      ->type_name("HOST")
      ->capture_default_str();
  app.add_option("--port", port, "server port (1-65535)")
      ->type_name("N")
      ->check(integer(1, 65535))
      ->capture_default_str();
  app.add_option("--msg", cfg.msg, "the request; '-' sends each stdin line on one connection")
      ->check(
          [](const std::string& v) {
            return v.find('\n') == std::string::npos
                       ? std::string{}
                       : std::string{
                             "must not contain a newline (use --msg - for several requests)"};
          },
          "")
      ->type_name("TEXT")
      ->capture_default_str();
  app.add_option("--timeout-ms", timeout,
                 "bounds connecting, and each request with its whole reply")
      ->type_name("MS")
      ->check(integer(1, 24LL * 3600 * 1000))
      ->capture_default_str();
  long long max_reply = static_cast<long long>(cfg.max_reply);
  app.add_option("--max-reply", max_reply, "a longer reply is a failure (reply_too_long)")
      ->type_name("BYTES")
      ->check(integer(1, 1LL << 30))
      ->capture_default_str();
  app.add_flag("--quiet", cfg.quiet, "print no replies (single) or progress (load)");
  auto* count_opt = app.add_option("--count", count, "load mode: requests in total")
                        ->type_name("N")
                        ->check(integer(1, 1000000000000LL));
  auto* duration_opt = app.add_option("--duration", duration, "load mode: seconds to run")
                           ->type_name("SECONDS")
                           ->check(number(0.001, 86400.0));
  count_opt->excludes(duration_opt);
  app.add_option("--concurrency", concurrency,
                 "load mode: connections, each with at most one request in flight (up to a "
                 "million; one descriptor each)")
      ->type_name("N")
      ->check(integer(1, 1000000));
  int threads = 0;
  app.add_option("--threads", threads,
                 "load mode: event-loop threads that drive the connections (default: one per CPU "
                 "tcpc may run on)")
      ->type_name("N")
      ->check(integer(1, 1024));
  app.add_flag("--keepalive", cfg.keepalive,
               "load mode: keep each connection for many requests (without it, a connection per "
               "request: with --rate, a connect storm)");
  app.add_option("--rate", cfg.rate,
                 "load mode: open loop at this many requests/s in total, spread over the "
                 "connections (needs enough --concurrency for the server's latency)")
      ->type_name("R")
      ->check(number(0.001, 1e9));
  auto* expect_opt =
      app.add_option("--expect", expect, "a reply other than this is a failure")->type_name("TEXT");
  app.add_flag("--json", cfg.json, "load mode: print one JSON object");
  std::size_t size = 0;
  std::string msg_file;
  std::string percentiles;
  auto* size_opt =
      app.add_option("--size", size, "load mode: requests of this many printable bytes")
          ->type_name("BYTES")
          ->check(integer(1, 64LL * 1024 * 1024));
  auto* file_opt =
      app.add_option("--msg-file", msg_file, "load mode: one request per line of FILE, cycled")
          ->type_name("FILE");
  size_opt->excludes(file_opt);
  app.add_option("--percentiles", percentiles, "load mode: latency percentiles to report")
      ->type_name("LIST")
      ->default_str("50,90,99,99.9");
  app.add_option("--histogram", cfg.histogram_file,
                 "load mode: write the latency distribution (HdrHistogram text format) to FILE")
      ->type_name("FILE");
  app.add_option("--ramp-up", cfg.ramp_up_s,
                 "load mode: open the connections spread over this long")
      ->type_name("SECONDS")
      ->check(number(0, 3600));
  app.add_option("--interval", cfg.interval_s,
                 "load mode: a line per interval on stderr (rps, p50, p99, errors)")
      ->type_name("SECONDS")
      ->check(number(0.01, 3600));
  auto* udp_opt = app.add_flag(
      "--udp", cfg.udp,
      "datagrams instead of a connection: --msg as one datagram, its reply printed; in load mode "
      "tcpc's own datagrams (a sequence number and timestamps, padded to --size, default 64) "
      "measure loss, duplicates, reordering, jitter and latency against an echo server");
  long long retries = 0;
  auto* retries_opt =
      app.add_option("--retries", retries, "with --udp: datagrams sent again when none is answered")
          ->type_name("N")
          ->check(integer(0, 100));
  long long rcvbuf = 0;
  auto* rcvbuf_opt =
      app.add_option("--rcvbuf", rcvbuf,
                     "with --udp: SO_RCVBUF of each socket (capped by net.core.rmem_max)")
          ->type_name("BYTES")
          ->check(integer(1024, 1LL << 30));
  retries_opt->needs(udp_opt);
  rcvbuf_opt->needs(udp_opt);
  auto* proxy_opt =
      app.add_option("--proxy-header", cfg.proxy_header,
                     "load mode, one-shot: begin each connection with a PROXY protocol header "
                     "of version 1 or 2 (client 192.0.2.1), as a balancer would")
          ->type_name("1|2")
          ->check(integer(1, 2));
  ThresholdFlags limits;
  add_threshold_options(app, limits);
  std::vector<std::string> targets;
  auto* target_opt =
      app.add_option("--target", targets,
                     "load mode: a server as HOST:PORT ([IPv6]:PORT); repeat it to spread the "
                     "connections over several, round-robin (instead of --host/--port)")
          ->type_name("HOST:PORT");
  app.add_option("--source", cfg.sources,
                 "load mode: bind connections to this local address; repeat it to cycle over "
                 "several (each adds a range of ephemeral ports)")
      ->type_name("ADDR");
  long long pipeline = 1;
  auto* pipeline_opt =
      app.add_option("--pipeline", pipeline,
                     "load mode, with --keepalive: requests in flight per connection")
          ->type_name("N")
          ->check(integer(1, 4096));
  app.add_option("--hlog", cfg.hlog_file,
                 "load mode: write each --interval's latency histogram (default 1 s) to FILE in "
                 "HdrHistogram's log format (.hlog)")
      ->type_name("FILE");
  auto* warmup_opt = app.add_option("--warmup", cfg.warmup_s,
                                    "load mode: seconds run first and left out of every figure")
                         ->type_name("SECONDS")
                         ->check(number(0, 3600));

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return ClientCliExit{
        0, e.get_name() == "CallForVersion" ? std::string(e.what()) + "\n" : app.help()};
  } catch (const CLI::ParseError& e) {
    return ClientCliExit{2, error_text(e)};
  }
  cfg.host = strip_brackets(cfg.host);
  cfg.port = static_cast<uint16_t>(port);
  cfg.timeout = Millis{timeout};
  cfg.max_reply = static_cast<std::size_t>(max_reply);
  cfg.count = static_cast<uint64_t>(count);
  if (*duration_opt) cfg.duration_s = duration;
  cfg.concurrency = static_cast<unsigned>(concurrency);
  cfg.threads = static_cast<unsigned>(threads);
  if (*expect_opt) cfg.expect = expect;
  if (*size_opt) {
    std::string m(size, 'x');
    for (std::size_t i = 0; i < size; ++i) m[i] = static_cast<char>('a' + i % 26);
    cfg.messages.push_back(std::move(m));
  }
  cfg.msg_file = msg_file;
  cfg.size = size;
  cfg.retries = static_cast<unsigned>(retries);
  cfg.pipeline = static_cast<unsigned>(pipeline);
  if (!targets.empty()) {
    if (auto why = set_targets(cfg, targets, app.count("--host") + app.count("--port") > 0)) {
      return ClientCliExit{2, "tcpc: " + *why + "\n"};
    }
  }
  cfg.rcvbuf = static_cast<std::size_t>(rcvbuf);
  const Given given{target_opt->count() > 0, pipeline_opt->count() > 0, proxy_opt->count() > 0,
                    warmup_opt->count() > 0, any_threshold(limits)};
  if (auto line = combination_error(cfg, given)) return ClientCliExit{2, *line};
  set_thresholds(cfg, limits);
  if (!percentiles.empty()) {
    if (auto why = parse_percentiles(percentiles, cfg.percentiles)) {
      return ClientCliExit{2, "tcpc: --percentiles: " + *why + " (see tcpc --help)\n"};
    }
  }
  return cfg;
}

}  // namespace tcpd

namespace tcpd {

std::variant<MergeConfig, ClientCliExit> parse_merge_cli(int argc, const char* const argv[]) {
  MergeConfig m;
  CLI::App app{
      "tcpc merge: combine the --json results of several tcpc runs (one generator each) into one "
      "result of the same schema: counts and bytes summed, rates over the union of their measured "
      "windows, percentiles from the merged histograms",
      "tcpc merge"};
  app.add_option("FILE", m.files, "a file of tcpc --json results, one per line ('-': stdin)")
      ->required()
      ->type_name("FILE");
  app.add_flag("--text", m.text, "print the summary as text instead of JSON");
  ThresholdFlags limits;
  add_threshold_options(app, limits);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success&) {
    return ClientCliExit{0, app.help()};
  } catch (const CLI::ParseError& e) {
    std::string what = e.what();
    return ClientCliExit{2, "tcpc merge: " + what + " (see tcpc merge --help)\n"};
  }
  set_thresholds(m.limits, limits);
  return m;
}

}  // namespace tcpd

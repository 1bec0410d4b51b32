#include "tcpd_cli.hpp"

#include <CLI/CLI.hpp>

#include "metrics_http.hpp"
#include "value_checks.hpp"
#include "version.hpp"

namespace tcpd {
namespace {

constexpr const char* kSignalsAndExitCodes = R"(Signals:
  SIGTERM, SIGINT  drain (serve what was received, bounded by --drain-timeout-ms plus a 1 s
                   grace), then exit 0; a second one exits at once with 128+signal
  SIGUSR1          print the counters (stats ...) and carry on
  SIGHUP           logged and ignored: there is no configuration file to reload
  SIGQUIT          exit at once with a core dump, no drain
Exit codes:
  0  clean drain    1  cannot start (address, metrics address, threads) or fatal error
  2  bad flag or value
)";

// An integer flag: "abc is not an integer", "70000 is not between 0 and 65535"; the help shows
// only the value's name (`--port N`), not CLI11's "INT:INT in [0 - 65535]".
CLI::Validator integer(long long lo, long long hi) {
  return {[lo, hi](std::string& v) { return check_integer(v, lo, hi); }, ""};
}

// ADDR:PORT's form, so that a bad value exits 2 like any other flag's; whether the address can be
// bound is found out when the metrics listener opens (exit 1).
CLI::Validator host_port() {
  return {[](std::string& v) -> std::string {
            try {
              split_host_port(v);
              return {};
            } catch (const std::invalid_argument& e) {
              return v + ": " + e.what();
            }
          },
          ""};
}

// CIDR[,CIDR...]: "10.0.0.0/33: the prefix length must be 0 to 32".
CLI::Validator cidr_list() {
  return {[](std::string& v) {
            CidrSet probe;
            return probe.add_list(v);
          },
          ""};
}

std::shared_ptr<const CidrSet> cidr_set(const std::vector<std::string>& lists) {
  auto set = std::make_shared<CidrSet>();
  for (const auto& l : lists) set->add_list(l);  // checked already by cidr_list()
  return set;
}

// CLI11's "--port: 1 required N missing" as a person would say it.
std::string error_text(const CLI::ParseError& e) {
  std::string what = e.what();
  if (e.get_name() == "ArgumentMismatch" && what.find(" missing") != std::string::npos) {
    what = what.substr(0, what.find(':')) + ": needs a value";
  }
  return "tcpd: " + what + " (see tcpd --help)\n";
}

}  // namespace

std::variant<ServerConfig, CliExit> parse_server_cli(int argc, const char* const argv[]) {
  ServerConfig cfg;
  CLI::App app{
      "tcpd: a concurrent TCP line service. The main thread accepts and queues each connection "
      "(bounded) for a fixed pool of workers, which read and answer with blocking calls once a "
      "client's bytes are there; a connection with nothing to say waits in one epoll set without "
      "a thread.",
      "tcpd"};
  app.set_version_flag("--version", std::string("tcpd ") + kVersion);
  int port = cfg.port;
  int workers = static_cast<int>(cfg.workers);
  long long queue = static_cast<long long>(cfg.queue);
  std::string mode = "greet";
  long long delay = 0;
  long long max_message = static_cast<long long>(cfg.max_message);
  long long idle = cfg.idle_timeout.count();
  long long io = cfg.io_timeout.count();
  long long drain = cfg.drain_timeout.count();
  constexpr long long kDay = 24LL * 3600 * 1000;

  auto* bind_opt =
      app.add_option("--bind", cfg.bind, "address to listen on (default: all, IPv6 dual-stack)")
          ->type_name("ADDR");
  auto* port_opt = app.add_option("--port", port, "TCP port (0-65535); 0 picks a free one")
                       ->type_name("N")
                       ->check(integer(0, 65535))
                       ->capture_default_str();
  app.add_option("--workers", workers, "worker threads (1-4096)")
      ->type_name("N")
      ->check(integer(1, 4096))
      ->capture_default_str();
  app.add_option("--queue", queue, "connections that may wait for a worker (1-1000000)")
      ->type_name("N")
      ->check(integer(1, 1000000))
      ->capture_default_str();
  app.add_option("--mode", mode, "greet: answer --reply; echo: answer the request")
      ->type_name("greet|echo")
      ->check(CLI::IsMember({"greet", "echo"}).description(""))
      ->capture_default_str();
  app.add_option("--reply", cfg.reply, "the greeting")
      ->check(
          [](const std::string& v) {
            return v.find('\n') == std::string::npos ? std::string{}
                                                     : std::string{"must not contain a newline"};
          },
          "")
      ->type_name("TEXT")
      ->capture_default_str();
  app.add_option("--delay-ms", delay, "simulated work before each reply")
      ->type_name("MS")
      ->check(integer(0, kDay))
      ->capture_default_str();
  app.add_option("--max-message", max_message,
                 "longest request in bytes, without \\r\\n (max 64 MiB)")
      ->type_name("BYTES")
      ->check(integer(1, 64LL * 1024 * 1024))
      ->capture_default_str();
  app.add_option("--idle-timeout-ms", idle, "close a session when no request begins in this time")
      ->type_name("MS")
      ->check(integer(1, kDay))
      ->capture_default_str();
  app.add_option("--io-timeout-ms", io,
                 "each request must arrive, and each reply be written, in this time")
      ->type_name("MS")
      ->check(integer(1, kDay))
      ->capture_default_str();
  app.add_option("--drain-timeout-ms", drain, "longest shutdown drain after SIGINT/SIGTERM")
      ->type_name("MS")
      ->check(integer(0, kDay))
      ->capture_default_str();
  long long oneshot = cfg.oneshot_wait.count();
  app.add_option("--oneshot-wait-ms", oneshot,
                 "before a client's first newline, this much silence ends a request: answered "
                 "without a newline, then closed (0: every request needs its newline)")
      ->type_name("MS")
      ->check(integer(0, 60000))
      ->capture_default_str();
  std::string log_format = "text";
  std::string log_level = "info";
  bool quiet = false;
  app.add_option("--log-format", log_format, "log lines as text or one JSON object each")
      ->type_name("text|json")
      ->check(CLI::IsMember({"text", "json"}).description(""))
      ->capture_default_str();
  auto* level_opt =
      app.add_option("--log-level", log_level, "error, warn, info (one line per connection), debug")
          ->type_name("LEVEL")
          ->check(CLI::IsMember({"error", "warn", "info", "debug"}).description(""))
          ->capture_default_str();
  app.add_flag("--quiet", quiet, "no per-connection log lines (--log-level warn)")
      ->excludes(level_opt);
  app.add_option("--name", cfg.name, "instance name shown in every log line (printable UTF-8)")
      ->type_name("TEXT")
      ->check([](const std::string& v) { return check_printable(v); }, "");
  app.add_option("--metrics", cfg.metrics,
                 "serve Prometheus metrics at http://ADDR:PORT/metrics (off by default)")
      ->type_name("ADDR:PORT")
      ->check(host_port());
  app.add_flag("--reuseport", cfg.reuseport,
               "SO_REUSEPORT: several tcpd processes share the port (rolling restarts)");
  long long udp_rate = 0;
  long long udp_batch = static_cast<long long>(cfg.udp_batch);
  std::string udp_socket = "shared";
  int udp_workers = 0;
  app.add_flag("--udp", cfg.udp,
               "also answer UDP datagrams on the same address and port: one datagram is one "
               "request, the reply one datagram (off by default)");
  app.add_option("--udp-source-rate", udp_rate,
                 "with --udp: at most N replies a second to one source address (0: no limit); "
                 "set it before exposing UDP beyond a trusted network")
      ->type_name("N")
      ->check(integer(0, 100000000))
      ->capture_default_str();
  app.add_option("--udp-socket", udp_socket,
                 "with --udp: one socket all UDP threads read, or one each (an SO_REUSEPORT group)")
      ->type_name("shared|reuseport")
      ->check(CLI::IsMember({"reuseport", "shared"}).description(""))
      ->capture_default_str();
  app.add_option("--udp-workers", udp_workers,
                 "with --udp: threads answering datagrams (default: one per CPU, at most "
                 "--workers; --workers with --delay-ms)")
      ->type_name("N")
      ->check(integer(1, 4096));
  app.add_option("--udp-batch", udp_batch, "with --udp: datagrams read per recvmmsg() (1-64)")
      ->type_name("N")
      ->check(integer(1, 64))
      ->capture_default_str();
  long long proxy_timeout = cfg.proxy_timeout.count();
  std::vector<std::string> proxy_from, allow, deny;
  int per_client = 0;
  app.add_flag("--proxy-protocol", cfg.proxy_protocol,
               "every connection must begin with a PROXY protocol header (v1 or v2) from a "
               "--proxy-from address; the header's client is the one logged and limited");
  app.add_option("--proxy-timeout-ms", proxy_timeout,
                 "with --proxy-protocol: the whole header must arrive within this")
      ->type_name("MS")
      ->check(integer(1, 600000))
      ->capture_default_str();
  app.add_option("--proxy-from", proxy_from,
                 "with --proxy-protocol: who may send the header (repeatable; default loopback: "
                 "127.0.0.0/8,::1/128)")
      ->type_name("CIDR[,CIDR...]")
      ->check(cidr_list());
  app.add_option("--allow", allow,
                 "serve only clients in these networks (repeatable; --deny wins; IPv4 rules "
                 "match IPv4-mapped IPv6 peers)")
      ->type_name("CIDR[,CIDR...]")
      ->check(cidr_list());
  app.add_option("--deny", deny, "never serve clients in these networks (repeatable)")
      ->type_name("CIDR[,CIDR...]")
      ->check(cidr_list());
  app.add_option("--max-conns-per-client", per_client,
                 "open connections one client address may hold (an IPv6 client is its /64); "
                 "the next gets ERR busy (0: no limit)")
      ->type_name("N")
      ->check(integer(0, 1000000))
      ->capture_default_str();
  app.footer(kSignalsAndExitCodes);

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return CliExit{0, e.get_name() == "CallForVersion" ? std::string(e.what()) + "\n" : app.help()};
  } catch (const CLI::ParseError& e) {
    return CliExit{2, error_text(e)};
  }
  cfg.port = static_cast<uint16_t>(port);
  cfg.address_given = bind_opt->count() > 0 || port_opt->count() > 0;
  cfg.workers = static_cast<unsigned>(workers);
  cfg.queue = static_cast<std::size_t>(queue);
  cfg.mode = mode == "echo" ? Mode::echo : Mode::greet;
  cfg.delay = Millis{delay};
  cfg.max_message = static_cast<std::size_t>(max_message);
  cfg.idle_timeout = Millis{idle};
  cfg.io_timeout = Millis{io};
  cfg.drain_timeout = Millis{drain};
  cfg.oneshot_wait = Millis{oneshot};
  cfg.udp_source_rate = static_cast<uint64_t>(udp_rate);
  cfg.udp_batch = static_cast<std::size_t>(udp_batch);
  cfg.udp_shared_socket = udp_socket == "shared";
  cfg.udp_workers = static_cast<unsigned>(udp_workers);
  cfg.proxy_timeout = Millis{proxy_timeout};
  cfg.proxy_from =
      cidr_set(proxy_from.empty() ? std::vector<std::string>{"127.0.0.0/8,::1/128"} : proxy_from);
  if (!allow.empty()) cfg.allow = cidr_set(allow);
  if (!deny.empty()) cfg.deny = cidr_set(deny);
  cfg.max_conns_per_client = static_cast<unsigned>(per_client);
  cfg.log_format = log_format == "json" ? LogFormat::json : LogFormat::text;
  cfg.log_level = quiet                  ? LogLevel::warn
                  : log_level == "error" ? LogLevel::error
                  : log_level == "warn"  ? LogLevel::warn
                  : log_level == "debug" ? LogLevel::debug
                                         : LogLevel::info;
  return cfg;
}

}  // namespace tcpd

#include "tcpc_cli.hpp"

#include <CLI/CLI.hpp>

#include "version.hpp"

namespace tcpd {

std::variant<ClientConfig, ClientCliExit> parse_client_cli(int argc, const char* const argv[]) {
  ClientConfig cfg;
  CLI::App app{"tcpc: client and load generator for tcpd's line protocol", "tcpc"};
  app.set_version_flag("--version", std::string("tcpc ") + kVersion);
  int port = cfg.port;
  long long timeout = cfg.timeout.count();
  long long count = 1;
  double duration = 0;
  int concurrency = 1;
  std::string expect;

  app.add_option("--host", cfg.host, "server name or address (IPv4 or IPv6)")
      ->capture_default_str();
  app.add_option("--port", port, "server port")->check(CLI::Range(1, 65535))->capture_default_str();
  app.add_option("--msg", cfg.msg, "the request; '-' sends each stdin line on one connection")
      ->check(
          [](const std::string& v) {
            return v.find('\n') == std::string::npos
                       ? std::string{}
                       : std::string{
                             "must not contain a newline (use --msg - for several requests)"};
          },
          "TEXT")
      ->capture_default_str();
  app.add_option("--timeout-ms", timeout, "bounds connect, send and receive, each")
      ->check(CLI::Range(1LL, 24LL * 3600 * 1000))
      ->capture_default_str();
  app.add_flag("--quiet", cfg.quiet, "print no replies (single) or progress (load)");
  auto* count_opt = app.add_option("--count", count, "load mode: requests in total")
                        ->check(CLI::Range(1LL, 1000000000000LL));
  auto* duration_opt = app.add_option("--duration", duration, "load mode: seconds to run")
                           ->check(CLI::Range(0.001, 86400.0));
  count_opt->excludes(duration_opt);
  app.add_option("--concurrency", concurrency, "load mode: client threads")
      ->check(CLI::Range(1, 10000));
  app.add_flag("--keepalive", cfg.keepalive, "load mode: one connection per thread, reused");
  app.add_option("--rate", cfg.rate, "load mode: open loop at this many requests/s in total")
      ->check(CLI::Range(0.001, 1e9));
  auto* expect_opt = app.add_option("--expect", expect, "a reply other than this is a failure");
  app.add_flag("--json", cfg.json, "load mode: print one JSON object");

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return ClientCliExit{
        0, e.get_name() == "CallForVersion" ? std::string(e.what()) + "\n" : app.help()};
  } catch (const CLI::ParseError& e) {
    return ClientCliExit{2, std::string("tcpc: ") + e.what() + " (see tcpc --help)\n"};
  }
  cfg.port = static_cast<uint16_t>(port);
  cfg.timeout = Millis{timeout};
  cfg.count = static_cast<uint64_t>(count);
  if (*duration_opt) cfg.duration_s = duration;
  cfg.concurrency = static_cast<unsigned>(concurrency);
  if (*expect_opt) cfg.expect = expect;
  if (cfg.stdin_mode() && cfg.load_mode()) {
    return ClientCliExit{
        2, "tcpc: --msg - reads requests from stdin and cannot be combined with load mode\n"};
  }
  return cfg;
}

}  // namespace tcpd

#include <fmt/format.h>

#include <cstdio>
#include <system_error>

#include "tcpd_cli.hpp"
#include "log.hpp"
#include "server.hpp"
#include "signals.hpp"

int main(int argc, char* argv[]) {
  auto parsed = tcpd::parse_server_cli(argc, argv);
  if (auto* done = std::get_if<tcpd::CliExit>(&parsed)) {
    std::fputs(done->text.c_str(), done->code == 0 ? stdout : stderr);
    return done->code;
  }
  const auto& config = std::get<tcpd::ServerConfig>(parsed);
  try {
    tcpd::block_server_signals();
    tcpd::Server server(config);
    // Scripts read the port from this line, so it goes out before anything can block.
    fmt::print("listening on {}\n", server.address());
    std::fflush(stdout);
    tcpd::SignalThread signals([&server] { server.stop(); },
                               [&server] { tcpd::log_line("stats {}", server.stats().format()); });
    server.run();
    tcpd::log_line("summary {}", server.stats().format());
    return 0;
  } catch (const std::system_error& e) {
    std::fprintf(stderr, "tcpd: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tcpd: %s\n", e.what());
    return 1;
  }
}

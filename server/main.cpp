#include <fmt/format.h>

#include <malloc.h>
#include <unistd.h>

#include <cstdio>
#include <optional>
#include <system_error>

#include "log.hpp"
#include "server.hpp"
#include "signals.hpp"
#include "tcpd_cli.hpp"

namespace {

int serve(const tcpd::ServerConfig& config) {
  tcpd::Server server(config);
  // Every thread runs before the server is announced: a pool that cannot be completed is an
  // error here, not a server that listens and answers nobody.
  server.start();
  tcpd::SignalThread signals([&server] { server.stop(); },
                             [&server] {
                               tcpd::log_line("stats {} log_dropped={}", server.stats().format(),
                                              tcpd::log_dropped());
                             });
  // Scripts read the port from this line, so it goes out before anything can block.
  fmt::print("listening on {}\n", server.address());
  std::fflush(stdout);
  server.run();
  tcpd::log_line("summary {} log_dropped={}", server.stats().format(), tcpd::log_dropped());
  return 0;
}

}  // namespace

int main(int argc, char* argv[]) {
  auto parsed = tcpd::parse_server_cli(argc, argv);
  if (auto* done = std::get_if<tcpd::CliExit>(&parsed)) {
    std::fputs(done->text.c_str(), done->code == 0 ? stdout : stderr);
    return done->code;
  }
  // glibc gives each thread that allocates its own arena; with a fixed pool that only costs
  // resident memory, since workers allocate little and rarely contend.
  mallopt(M_ARENA_MAX, 2);
  // Outlives everything that logs, and ends with a bounded flush even if stderr is blocked.
  std::optional<tcpd::LogWriter> log;
  try {
    // Before any thread starts, so that every thread inherits the mask and only the signal
    // thread takes them.
    tcpd::block_server_signals();
    log.emplace(STDERR_FILENO);
    return serve(std::get<tcpd::ServerConfig>(parsed));
  } catch (const std::exception& e) {
    // Setup failures are std::system_error naming the address or resource and the errno text.
    tcpd::log_line("{}", e.what());
    return 1;
  }
}

#include <fmt/format.h>

#include <malloc.h>

#include <cstdio>
#include <system_error>

#include "log.hpp"
#include "server.hpp"
#include "signals.hpp"
#include "tcpd_cli.hpp"

int main(int argc, char* argv[]) {
  try {
    auto parsed = tcpd::parse_server_cli(argc, argv);
    if (auto* done = std::get_if<tcpd::CliExit>(&parsed)) {
      std::fputs(done->text.c_str(), done->code == 0 ? stdout : stderr);
      return done->code;
    }
    const auto& config = std::get<tcpd::ServerConfig>(parsed);
    // glibc gives each thread that allocates its own arena; with a fixed pool that only costs
    // resident memory, since workers allocate little and rarely contend.
    mallopt(M_ARENA_MAX, 2);
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
  } catch (const std::exception& e) {
    // Setup failures are std::system_error naming the address or resource and the errno text.
    std::fprintf(stderr, "tcpd: %s\n", e.what());
    return 1;
  }
}

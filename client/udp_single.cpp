#include "udp_single.hpp"

#include <fmt/format.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <optional>

#include "exchange.hpp"
#include "report.hpp"
#include "udp_payload.hpp"

namespace tcpd {
namespace {

constexpr std::size_t kMaxDatagram = 65507;

int fail(const std::string& message) {
  std::fprintf(stderr, "tcpc: %s\n", message.c_str());
  return 1;
}

// What one datagram's exchange came to.
struct Answer {
  std::optional<std::string> reply;
  int err = 0;  // ECONNREFUSED: nothing listens; 0 with no reply: timed out
};

Answer exchange(int fd, const std::string& msg, const ClientConfig& cfg) {
  std::string buf(std::min(cfg.max_reply, kMaxDatagram) + 1, '\0');
  for (unsigned attempt = 0; attempt <= cfg.retries; ++attempt) {
    if (::send(fd, msg.data(), msg.size(), 0) < 0) return {std::nullopt, errno};
    const auto deadline = Clock::now() + cfg.timeout;
    for (;;) {
      pollfd p{fd, POLLIN, 0};
      const int rc = ::poll(&p, 1, poll_timeout_ms(deadline));
      if (rc < 0 && errno == EINTR) continue;
      if (rc <= 0) break;  // this attempt timed out
      const ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
      if (n >= 0) {
        buf.resize(static_cast<std::size_t>(n));
        return {buf, 0};
      }
      if (errno != EAGAIN && errno != EINTR) return {std::nullopt, errno};
    }
  }
  return {};
}

Fd connected_socket(const Target& t) {
  Fd fd(::socket(t.addr.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (fd && ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&t.addr), t.len) != 0) {
    return Fd();
  }
  return fd;
}

std::string no_reply(const ClientConfig& cfg, const Answer& a) {
  if (a.err == ECONNREFUSED) {
    return fmt::format(
        "nothing listens for UDP at {} (ICMP port unreachable; is the server "
        "started with --udp?)",
        endpoint(cfg));
  }
  if (a.err != 0) return fmt::format("UDP to {}: {}", endpoint(cfg), std::strerror(a.err));
  return fmt::format("no reply from {} within {} ms{}", endpoint(cfg), cfg.timeout.count(),
                     cfg.retries > 0 ? fmt::format(" ({} tries)", cfg.retries + 1) : "");
}

// Prints the reply; the exit status for it.
int show(const ClientConfig& cfg, const std::string& reply) {
  if (reply.size() > cfg.max_reply) {
    return fail(fmt::format("the reply from {} is longer than --max-reply {} bytes", endpoint(cfg),
                            cfg.max_reply));
  }
  if (cfg.expect && reply != *cfg.expect) {
    return fail(fmt::format("unexpected reply from {}: \"{}\" (expected \"{}\")", endpoint(cfg),
                            reply, *cfg.expect));
  }
  if (!cfg.quiet) {
    std::fwrite(reply.data(), 1, reply.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

std::size_t udp_datagram_size(const ClientConfig& cfg) {
  return std::max(cfg.size == 0 ? std::size_t{64} : cfg.size, UdpStamp::kSize);
}

std::variant<std::vector<Target>, std::string> resolve_udp(const ClientConfig& cfg) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_ADDRCONFIG;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(cfg.port);
  if (const int rc = ::getaddrinfo(cfg.host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    return fmt::format("cannot resolve {}: {}", cfg.host, ::gai_strerror(rc));
  }
  std::vector<Target> out;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    Target t;
    std::memcpy(&t.addr, ai->ai_addr, ai->ai_addrlen);
    t.len = ai->ai_addrlen;
    out.push_back(t);
  }
  ::freeaddrinfo(res);
  return out;
}

int run_udp_single(const ClientConfig& cfg) {
  auto resolved = resolve_udp(cfg);
  if (auto* why = std::get_if<std::string>(&resolved)) return fail(*why);
  const auto& targets = std::get<std::vector<Target>>(resolved);
  std::string first = cfg.msg;
  std::string line;
  if (cfg.stdin_mode()) {
    if (!std::getline(std::cin, line)) return 0;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    first = line;
  }
  // The first datagram finds the address that answers (localhost may be ::1 or 127.0.0.1):
  // an ICMP port unreachable moves on to the next.
  Fd fd;
  Answer a;
  for (const Target& t : targets) {
    fd = connected_socket(t);
    if (!fd) continue;
    a = exchange(fd.get(), first, cfg);
    if (a.err != ECONNREFUSED) break;
  }
  if (!a.reply) return fail(no_reply(cfg, a));
  if (const int rc = show(cfg, *a.reply); rc != 0) return rc;
  while (cfg.stdin_mode() && std::getline(std::cin, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    a = exchange(fd.get(), line, cfg);
    if (!a.reply) return fail(no_reply(cfg, a));
    if (const int rc = show(cfg, *a.reply); rc != 0) return rc;
  }
  return 0;
}

}  // namespace tcpd

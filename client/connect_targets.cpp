#include "connect_targets.hpp"

#include <fmt/format.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace tcpd {
namespace {

// --source's first address, which the first connections come from too (a server that admits
// only those addresses would refuse any other).
std::optional<Target> first_source(const ClientConfig& cfg) {
  if (cfg.sources.empty()) return std::nullopt;
  for (int family : {AF_INET, AF_INET6}) {
    auto s = source_address(cfg.sources.front(), family);
    if (auto* t = std::get_if<Target>(&s)) return *t;
  }
  return std::nullopt;
}

}  // namespace

std::string connect_error(const ClientConfig& cfg, const ConnectResult& c) {
  std::string why = !c.detail.empty() ? c.detail
                    : c.error == ETIMEDOUT
                        ? fmt::format("timed out after {} ms", cfg.timeout.count())
                        : std::string(std::strerror(c.error));
  return fmt::format("cannot connect to {}: {}", host_port(cfg.host, cfg.port), why);
}

std::optional<std::string> find_targets(const ClientConfig& cfg, std::vector<Target>& targets,
                                        std::vector<Fd>& firsts) {
  const std::optional<Target> source = first_source(cfg);
  if (!cfg.sources.empty() && !source) {
    return fmt::format("--source {}: not an IPv4 or IPv6 address", cfg.sources.front());
  }
  const auto* src = source ? reinterpret_cast<const sockaddr*>(&source->addr) : nullptr;
  for (const Endpoint& e : cfg.endpoints()) {
    auto c = connect_tcp(e.host, e.port, Clock::now() + cfg.timeout, src, source ? source->len : 0);
    if (!c.fd && source && c.error == EAFNOSUPPORT) {
      return fmt::format("--source {}: {} has no address of its family (IPv{})",
                         cfg.sources.front(), host_port(e.host, e.port),
                         source->addr.ss_family == AF_INET ? 4 : 6);
    }
    if (!c.fd) {
      ClientConfig one = cfg;
      one.host = e.host;
      one.port = e.port;
      return connect_error(one, c);
    }
    Target t;
    t.len = sizeof t.addr;
    if (::getpeername(c.fd.get(), reinterpret_cast<sockaddr*>(&t.addr), &t.len) != 0) {
      return fmt::format("getpeername: {}", std::strerror(errno));
    }
    if (source && !targets.empty() && t.addr.ss_family != targets.front().addr.ss_family) {
      return "--source binds one address family, but the targets mix IPv4 and IPv6";
    }
    targets.push_back(t);
    firsts.push_back(std::move(c.fd));
  }
  return std::nullopt;
}

}  // namespace tcpd

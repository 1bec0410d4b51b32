#include "udp.hpp"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "socket.hpp"

namespace testing_support {
namespace {

bool make_address(int family, const std::string& address, int port, sockaddr_storage& ss,
                  socklen_t& len) {
  ss = {};
  if (family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<uint16_t>(port));
    if (!address.empty() && ::inet_pton(AF_INET6, address.c_str(), &a->sin6_addr) != 1) {
      return false;
    }
    len = sizeof *a;
    return true;
  }
  auto* a = reinterpret_cast<sockaddr_in*>(&ss);
  a->sin_family = AF_INET;
  a->sin_port = htons(static_cast<uint16_t>(port));
  if (!address.empty() && ::inet_pton(AF_INET, address.c_str(), &a->sin_addr) != 1) return false;
  len = sizeof *a;
  return true;
}

// "::ffff:1.2.3.4" on an IPv6 socket is still an IPv4 destination written the IPv6 way.
int family_of(const std::string& address, int fallback) {
  if (address.find(':') != std::string::npos) return AF_INET6;
  return fallback == AF_INET6 && !address.empty() ? AF_INET6 : AF_INET;
}

}  // namespace

UdpPeer::UdpPeer(int family, const std::string& address, uint16_t port) : family_(family) {
  fd_ = tcpd::Fd(::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd_) return;
  if (address.empty() && port == 0) return;
  sockaddr_storage ss;
  socklen_t len = 0;
  if (!make_address(family, address, port, ss, len) ||
      ::bind(fd_.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    bind_errno_ = errno;
    fd_.reset();
  }
}

bool UdpPeer::connect(const std::string& address, int port) {
  sockaddr_storage ss;
  socklen_t len = 0;
  std::string a = address;
  if (family_ == AF_INET6 && address.find(':') == std::string::npos) a = "::ffff:" + address;
  return make_address(family_of(a, family_), a, port, ss, len) &&
         ::connect(fd_.get(), reinterpret_cast<sockaddr*>(&ss), len) == 0;
}

bool UdpPeer::send_to(const std::string& address, int port, const std::string& data) {
  sockaddr_storage ss;
  socklen_t len = 0;
  std::string a = address;
  if (family_ == AF_INET6 && address.find(':') == std::string::npos) a = "::ffff:" + address;
  if (!make_address(family_of(a, family_), a, port, ss, len)) return false;
  return ::sendto(fd_.get(), data.data(), data.size(), 0, reinterpret_cast<sockaddr*>(&ss), len) ==
         static_cast<ssize_t>(data.size());
}

bool UdpPeer::send(const std::string& data) {
  return ::send(fd_.get(), data.data(), data.size(), 0) == static_cast<ssize_t>(data.size());
}

std::optional<std::string> UdpPeer::receive(std::chrono::milliseconds timeout, std::string* from) {
  pollfd p{fd_.get(), POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return std::nullopt;
  std::string buf(65536, '\0');
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  const ssize_t n = ::recvfrom(fd_.get(), buf.data(), buf.size(), MSG_DONTWAIT,
                               reinterpret_cast<sockaddr*>(&ss), &len);
  if (n < 0) return std::nullopt;
  if (from != nullptr) *from = tcpd::format_address(reinterpret_cast<sockaddr*>(&ss), len);
  buf.resize(static_cast<std::size_t>(n));
  return buf;
}

LossyEcho::LossyEcho() {
  fd_ = tcpd::Fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  wake_ = tcpd::Fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int big = 4 << 20;
  ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
  ::bind(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
  port_ = tcpd::local_port(fd_.get());
  thread_ = std::thread([this] { run(); });
}

LossyEcho::~LossyEcho() {
  uint64_t one = 1;
  [[maybe_unused]] auto rc = ::write(wake_.get(), &one, sizeof one);
  thread_.join();
}

void LossyEcho::run() {
  std::string buf(65536, '\0');
  std::string held;
  sockaddr_storage held_to{};
  socklen_t held_len = 0;
  for (uint64_t n = 0;; ++n) {
    pollfd p[2] = {{fd_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
    if (::poll(p, 2, 30000) <= 0 || p[1].revents != 0) return;
    sockaddr_storage from{};
    socklen_t len = sizeof from;
    const ssize_t got =
        ::recvfrom(fd_.get(), buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
    if (got < 0) return;
    received_.fetch_add(1);
    const std::string d(buf.data(), static_cast<std::size_t>(got));
    auto echo = [&](const std::string& data, const sockaddr_storage& to, socklen_t to_len) {
      ::sendto(fd_.get(), data.data(), data.size(), 0, reinterpret_cast<const sockaddr*>(&to),
               to_len);
    };
    switch (n % 10) {
      case 3: break;
      case 5:
        echo(d, from, len);
        echo(d, from, len);
        break;
      case 7:
        held = d;
        held_to = from;
        held_len = len;
        continue;
      default: echo(d, from, len); break;
    }
    if (held_len != 0) {
      echo(held, held_to, held_len);
      held_len = 0;
    }
  }
}

}  // namespace testing_support

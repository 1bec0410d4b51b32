#include "socket.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <system_error>

namespace tcpd {
namespace {

std::system_error sys_error(int err, const std::string& what) {
  return {err, std::generic_category(), what};
}

Fd bind_listen(int family, const sockaddr* sa, socklen_t len, int backlog, const std::string& name,
               bool reuseport) {
  Fd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throw sys_error(errno, "cannot create a socket for " + name);
  int one = 1;
  // Lets a restarted server bind while old connections sit in TIME_WAIT.
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuseport && ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    throw sys_error(errno, "cannot set SO_REUSEPORT on " + name);
  }
  if (family == AF_INET6) {
    // Dual-stack only for the wildcard; an explicit IPv6 address stays IPv6-only as given.
    const auto* a6 = reinterpret_cast<const sockaddr_in6*>(sa);
    int v6only = IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr) ? 0 : 1;
    ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
  }
  if (::bind(fd.get(), sa, len) != 0) throw sys_error(errno, "cannot bind to " + name);
  if (::listen(fd.get(), backlog) != 0) throw sys_error(errno, "cannot listen on " + name);
  return fd;
}

// Returns fd's revents, 0 on timeout, -1 when woken (and fd had nothing).
short poll_events(int fd, short events, Clock::time_point deadline, int wake_fd, int& err) {
  // poll(2) ignores a negative descriptor, so no wake_fd costs nothing.
  std::array<pollfd, 2> pfd{{{fd, events, 0}, {wake_fd, POLLIN, 0}}};
  const nfds_t n = wake_fd >= 0 ? 2 : 1;
  for (;;) {
    int rc = ::poll(pfd.data(), n, poll_timeout_ms(deadline));
    if (rc > 0) return pfd[0].revents != 0 ? pfd[0].revents : short{-1};
    if (rc == 0) {
      if (Clock::now() >= deadline) return 0;
      continue;  // poll's millisecond rounding can wake a hair early
    }
    if (errno != EINTR) {
      err = errno;
      return POLLERR;
    }
  }
}

using AddrList = std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)>;

// TCP addresses for host:port, IPv4 and IPv6; getaddrinfo's error code, 0 on success.
int resolve(const std::string& host, uint16_t port, int flags, AddrList& out) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = flags | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  const int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
  if (rc == 0) out.reset(res);
  return rc;
}

IoStatus classify(int err) {
  return (err == ECONNRESET || err == EPIPE) ? IoStatus::reset : IoStatus::error;
}

}  // namespace

Fd listen_tcp(const std::string& address, uint16_t port, int backlog, bool reuseport) {
  if (address.empty()) {
    sockaddr_in6 a6{};
    a6.sin6_family = AF_INET6;
    a6.sin6_addr = in6addr_any;
    a6.sin6_port = htons(port);
    Fd probe(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (probe) {
      probe.reset();
      try {
        return bind_listen(AF_INET6, reinterpret_cast<sockaddr*>(&a6), sizeof a6, backlog,
                           "[::]:" + std::to_string(port), reuseport);
      } catch (const std::system_error& e) {
        // Kernels booted with ipv6.disable=1 refuse the bind rather than the socket.
        if (e.code().value() != EADDRNOTAVAIL && e.code().value() != EAFNOSUPPORT) throw;
      }
    }
    sockaddr_in a4{};
    a4.sin_family = AF_INET;
    a4.sin_addr.s_addr = htonl(INADDR_ANY);
    a4.sin_port = htons(port);
    return bind_listen(AF_INET, reinterpret_cast<sockaddr*>(&a4), sizeof a4, backlog,
                       "0.0.0.0:" + std::to_string(port), reuseport);
  }

  const std::string name = host_port(address, port);
  AddrList res(nullptr, &::freeaddrinfo);
  if (int rc = resolve(address, port, AI_PASSIVE, res); rc != 0) {
    // A resolver failure has no errno: std::system_error would append a misleading one.
    throw std::runtime_error("cannot resolve bind address " + address + ": " + gai_strerror(rc));
  }
  std::system_error last = sys_error(EADDRNOTAVAIL, "cannot bind to " + name);
  for (addrinfo* ai = res.get(); ai != nullptr; ai = ai->ai_next) {
    try {
      return bind_listen(ai->ai_family, ai->ai_addr, ai->ai_addrlen, backlog, name, reuseport);
    } catch (const std::system_error& e) {
      last = e;
    }
  }
  throw last;
}

std::string host_port(std::string_view host, uint16_t port) {
  const bool v6 = host.find(':') != std::string_view::npos;
  std::string out;
  out.reserve(host.size() + 8);
  if (v6) out += '[';
  out += host;
  if (v6) out += ']';
  out += ':';
  out += std::to_string(port);
  return out;
}

std::string format_address(const sockaddr* sa, socklen_t len) {
  char host[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  bool v6 = false;
  if (sa->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(sa);
    ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    port = ntohs(a->sin_port);
  } else if (sa->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(sa);
    port = ntohs(a->sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
      // An IPv4 client of a dual-stack socket: show it as the IPv4 address it is.
      ::inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], host, sizeof host);
    } else {
      ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
      v6 = true;
    }
  } else {
    return "?";
  }
  std::string out = host_port(host, port);
  return out;
}

void PeerAddress::set(const sockaddr* sa, socklen_t len) {
  addr = {};
  std::memcpy(&addr, sa, std::min<std::size_t>(len, sizeof addr));
}

std::string PeerAddress::str() const {
  if (addr.sa.sa_family == AF_INET) {
    return format_address(&addr.sa, static_cast<socklen_t>(sizeof addr.v4));
  }
  if (addr.sa.sa_family == AF_INET6) {
    return format_address(&addr.sa, static_cast<socklen_t>(sizeof addr.v6));
  }
  return "?";
}

std::string local_address(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  return format_address(reinterpret_cast<sockaddr*>(&ss), len);
}

uint16_t local_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return 0;
}

ConnectResult connect_addr(const sockaddr* sa, socklen_t len, Clock::time_point deadline,
                           const sockaddr* source, socklen_t source_len) {
  Fd fd(::socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return {Fd{}, errno, {}};
  if (source != nullptr && ::bind(fd.get(), source, source_len) != 0) return {Fd{}, errno, {}};
  if (::connect(fd.get(), sa, len) == 0) return {std::move(fd), 0, {}};
  if (errno != EINPROGRESS && errno != EINTR) return {Fd{}, errno, {}};
  int err = 0;
  short ev = poll_events(fd.get(), POLLOUT, deadline, -1, err);
  if (ev == 0) return {Fd{}, ETIMEDOUT, {}};
  if (err != 0) return {Fd{}, err, {}};
  socklen_t elen = sizeof err;
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &elen) != 0) err = errno;
  if (err != 0) return {Fd{}, err, {}};
  return {std::move(fd), 0, {}};
}

ConnectResult connect_tcp(const std::string& host, uint16_t port, Clock::time_point deadline,
                          const sockaddr* source, socklen_t source_len) {
  AddrList res(nullptr, &::freeaddrinfo);
  if (int rc = resolve(host, port, AI_ADDRCONFIG, res); rc != 0) {
    return {Fd{}, rc == EAI_SYSTEM ? errno : 0, gai_strerror(rc)};
  }
  // EAFNOSUPPORT: no address of the source's family.
  ConnectResult last{Fd{}, source != nullptr ? EAFNOSUPPORT : ECONNREFUSED, {}};
  for (addrinfo* ai = res.get(); ai != nullptr; ai = ai->ai_next) {
    if (source != nullptr && ai->ai_family != source->sa_family) continue;
    last = connect_addr(ai->ai_addr, ai->ai_addrlen, deadline, source, source_len);
    if (last.fd || last.error == ETIMEDOUT) break;
  }
  return last;
}

IoStatus wait_readable(int fd, Clock::time_point deadline, int wake_fd) {
  int err = 0;
  short ev = poll_events(fd, POLLIN, deadline, wake_fd, err);
  if (ev == 0) return IoStatus::timed_out;
  if (ev == -1) return IoStatus::woken;
  return IoStatus::ok;
}

IoResult read_some(int fd, char* buf, std::size_t len, Clock::time_point deadline, int wake_fd) {
  for (;;) {
    // MSG_DONTWAIT: the caller's deadline applies whether or not the socket is O_NONBLOCK.
    ssize_t n = ::recv(fd, buf, len, MSG_DONTWAIT);
    if (n > 0) return {IoStatus::ok, static_cast<std::size_t>(n)};
    if (n == 0) return {IoStatus::closed};
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return {classify(errno), 0, errno};
    if (deadline <= Clock::now()) return {IoStatus::timed_out};  // a non-blocking check
    int err = 0;
    short ev = poll_events(fd, POLLIN, deadline, wake_fd, err);
    if (ev == 0) return {IoStatus::timed_out};
    if (ev == -1) return {IoStatus::woken};
    if (err != 0) return {IoStatus::error, 0, err};
  }
}

IoResult write_all(int fd, std::string_view data, Clock::time_point deadline, int wake_fd) {
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) {
      done += static_cast<std::size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return {classify(errno), done, errno};
    int err = 0;
    short ev = poll_events(fd, POLLOUT, deadline, wake_fd, err);
    if (ev == 0) return {IoStatus::timed_out, done};
    if (ev == -1) return {IoStatus::woken, done};
    if (err != 0) return {IoStatus::error, done, err};
  }
  return {IoStatus::ok, done};
}

bool set_io_timeout(int fd, int option, Millis timeout) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  return ::setsockopt(fd, SOL_SOCKET, option, &tv, sizeof tv) == 0;
}

bool send_now(int fd, std::string_view data) {
  for (;;) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) return static_cast<std::size_t>(n) == data.size();
    if (errno != EINTR) return false;
  }
}

Pending peek_input(int fd) {
  for (;;) {
    char c;
    const ssize_t n = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) return Pending::input;
    if (n == 0) return Pending::closed;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK ? Pending::nothing : Pending::error;
  }
}

bool discard_input(int fd, std::size_t limit) {
  char buf[4096];
  std::size_t total = 0;
  while (total < limit) {
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      total += static_cast<std::size_t>(n);
      continue;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
  return true;
}

}  // namespace tcpd

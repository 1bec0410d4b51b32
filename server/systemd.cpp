#include "systemd.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>

namespace tcpd {

Notifier::Notifier() {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (path == nullptr || (path[0] != '/' && path[0] != '@')) return;
  const std::size_t n = std::strlen(path);
  if (n >= sizeof addr_.sun_path) return;
  addr_.sun_family = AF_UNIX;
  std::memcpy(addr_.sun_path, path, n);
  if (path[0] == '@') addr_.sun_path[0] = '\0';  // the abstract namespace
  len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + n);
  fd_ = Fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
}

void Notifier::send(std::string_view state) const noexcept {
  if (!fd_) return;
  [[maybe_unused]] auto rc = ::sendto(fd_.get(), state.data(), state.size(), MSG_NOSIGNAL,
                                      reinterpret_cast<const sockaddr*>(&addr_), len_);
}

std::string unusable_listener(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return "is not open";
  if (!S_ISSOCK(st.st_mode)) {
    if (S_ISREG(st.st_mode)) return "is a file, not a socket";
    if (S_ISFIFO(st.st_mode)) return "is a pipe, not a socket";
    return "is not a socket";
  }
  int domain = 0, type = 0, listening = 0;
  socklen_t len = sizeof domain;
  ::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len);
  len = sizeof type;
  ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len);
  len = sizeof listening;
  ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len);
  if (domain == AF_UNIX) return "is a Unix-domain socket (ListenStream=/path)";
  if (domain != AF_INET && domain != AF_INET6) return "is not an IP socket";
  if (type == SOCK_DGRAM) return "is a UDP socket (ListenDatagram=)";
  if (type != SOCK_STREAM) return "is not a TCP socket";
  if (listening == 1) return {};
  sockaddr_storage peer{};
  len = sizeof peer;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) == 0) {
    return "is a connected TCP socket (Accept=yes passes connections, not the listener)";
  }
  return "is a TCP socket that is not listening";
}

bool is_udp_socket(int fd) {
  int domain = 0, type = 0;
  socklen_t len = sizeof domain;
  if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) return false;
  len = sizeof type;
  ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len);
  return (domain == AF_INET || domain == AF_INET6) && type == SOCK_DGRAM;
}

namespace {

std::runtime_error activation_error(int fd, const std::string& problem) {
  return std::runtime_error("socket activation: descriptor " + std::to_string(fd) + " " + problem +
                            "; tcpd needs a listening TCP socket (ListenStream=PORT or "
                            "ADDR:PORT, Accept=no) and, with --udp, a UDP socket "
                            "(ListenDatagram=)");
}

}  // namespace

InheritedSockets inherited_sockets() {
  const char* pid = std::getenv("LISTEN_PID");
  const char* fds = std::getenv("LISTEN_FDS");
  const bool ours = pid != nullptr && fds != nullptr && std::to_string(::getpid()) == pid;
  const std::string count = fds != nullptr ? fds : "";
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
  InheritedSockets got;
  if (!ours) return got;
  if (count != "1" && count != "2") {
    throw std::system_error(EINVAL, std::generic_category(),
                            "socket activation passed " + count +
                                " sockets; tcpd serves one TCP listener (ListenStream=) and, "
                                "with --udp, one UDP socket (ListenDatagram=)");
  }
  constexpr int kFirst = 3;  // SD_LISTEN_FDS_START
  for (int fd = kFirst; fd < kFirst + std::stoi(count); ++fd) {
    const std::string problem = unusable_listener(fd);
    int& slot = problem.empty() ? got.tcp : is_udp_socket(fd) ? got.udp : got.tcp;
    if (!problem.empty() && !is_udp_socket(fd)) throw activation_error(fd, problem);
    if (slot >= 0) throw activation_error(fd, "is a second socket of the same kind");
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    slot = fd;
  }
  return got;
}

}  // namespace tcpd

#include "systemd.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
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

int inherited_listener() {
  const char* pid = std::getenv("LISTEN_PID");
  const char* fds = std::getenv("LISTEN_FDS");
  const bool ours = pid != nullptr && fds != nullptr && std::to_string(::getpid()) == pid;
  const std::string count = fds != nullptr ? fds : "";
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
  if (!ours) return -1;
  if (count != "1") {
    throw std::system_error(EINVAL, std::generic_category(),
                            "socket activation passed " + count +
                                " sockets; tcpd serves exactly one (ListenStream= once)");
  }
  constexpr int kFirst = 3;  // SD_LISTEN_FDS_START
  int type = 0, listening = 0;
  socklen_t len = sizeof type;
  const bool stream =
      ::getsockopt(kFirst, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
  len = sizeof listening;
  const bool accepts =
      ::getsockopt(kFirst, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening == 1;
  if (!stream || !accepts) {
    throw std::system_error(ENOTSOCK, std::generic_category(),
                            "socket activation: descriptor 3 is not a listening TCP socket");
  }
  ::fcntl(kFirst, F_SETFD, FD_CLOEXEC);
  return kFirst;
}

}  // namespace tcpd

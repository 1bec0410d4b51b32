#pragma once

#include <string>

#include <sys/socket.h>
#include <sys/un.h>

#include <string_view>

#include "fd.hpp"

namespace tcpd {

// systemd's readiness protocol (sd_notify(3)), written by hand: one datagram per state change to
// the socket named by $NOTIFY_SOCKET. Without it every call does nothing. By hand rather than
// libsystemd: the protocol is a sendto(), and tcpd stays free of a runtime dependency.
class Notifier {
 public:
  Notifier();
  [[nodiscard]] bool enabled() const { return fd_.valid(); }
  // "READY=1", "STOPPING=1", "STATUS=…". Never blocks; a lost datagram is not an error.
  void send(std::string_view state) const noexcept;

 private:
  Fd fd_;
  sockaddr_un addr_{};
  socklen_t len_ = 0;
};

// systemd's socket activation (sd_listen_fds(3)): the sockets passed from descriptor 3 on when
// $LISTEN_PID is this process: a listening TCP socket, a UDP socket (ListenDatagram=), or one of
// each; -1 for what was not passed. The variables are removed either way. Throws when something
// was passed that tcpd cannot use (more than two sockets, two of a kind, anything else).
struct InheritedSockets {
  int tcp = -1;
  int udp = -1;
};
InheritedSockets inherited_sockets();

bool is_udp_socket(int fd);

// What makes `fd` unusable as tcpd's listener ("is a UDP socket (ListenDatagram=)"), or "" when
// it is a listening TCP socket (IPv4 or IPv6).
std::string unusable_listener(int fd);

}  // namespace tcpd

// What tcpd says about a descriptor 3 it cannot serve (socket activation): one reason per kind
// of descriptor, and nothing for a listening TCP socket.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "fd.hpp"
#include "socket.hpp"
#include "systemd.hpp"

using tcpd::Fd;
using tcpd::unusable_listener;

namespace {

Fd socket_of(int domain, int type) {
  return Fd(::socket(domain, type | SOCK_CLOEXEC, 0));
}

}  // namespace

TEST(SocketActivation, AListeningTcpSocketIsUsable) {
  Fd v4 = tcpd::listen_tcp("127.0.0.1", 0, 8);
  EXPECT_EQ(unusable_listener(v4.get()), "");
  Fd v6 = tcpd::listen_tcp("::1", 0, 8);
  EXPECT_EQ(unusable_listener(v6.get()), "");
}

TEST(SocketActivation, EachUnusableDescriptorIsNamedForWhatItIs) {
  Fd udp = socket_of(AF_INET, SOCK_DGRAM);
  EXPECT_EQ(unusable_listener(udp.get()), "is a UDP socket (ListenDatagram=)");

  Fd idle = socket_of(AF_INET, SOCK_STREAM);
  EXPECT_EQ(unusable_listener(idle.get()), "is a TCP socket that is not listening");

  Fd listener = tcpd::listen_tcp("127.0.0.1", 0, 8);
  auto conn = tcpd::connect_tcp("127.0.0.1", tcpd::local_port(listener.get()),
                                tcpd::Clock::now() + std::chrono::seconds(5));
  ASSERT_TRUE(conn.fd.valid());
  EXPECT_EQ(unusable_listener(conn.fd.get()),
            "is a connected TCP socket (Accept=yes passes connections, not the listener)");

  Fd unix_listener = socket_of(AF_UNIX, SOCK_STREAM);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string path = "/tmp/tcpd-activation-test-" + std::to_string(::getpid());
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  ::unlink(path.c_str());
  ASSERT_EQ(::bind(unix_listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(unix_listener.get(), 8), 0);
  EXPECT_EQ(unusable_listener(unix_listener.get()), "is a Unix-domain socket (ListenStream=/path)");
  ::unlink(path.c_str());

  Fd file(::open("/proc/self/stat", O_RDONLY | O_CLOEXEC));
  EXPECT_EQ(unusable_listener(file.get()), "is a file, not a socket");

  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  Fd r(pipe_fds[0]), w(pipe_fds[1]);
  EXPECT_EQ(unusable_listener(r.get()), "is a pipe, not a socket");

  const int closed = r.get();
  r.reset();
  EXPECT_EQ(unusable_listener(closed), "is not open");
}

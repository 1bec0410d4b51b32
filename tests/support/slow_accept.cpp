// An LD_PRELOAD shim for one test: accept4() sleeps 2 ms before the real call. tcpd's acceptor
// decides whether to accept from what it saw just before (its spare descriptor); the sleep
// widens that window from microseconds to milliseconds, so that a descriptor freed by another
// thread meanwhile (a rejected connection closing) lands in it often instead of once in many
// runs. Built without sanitizers and loaded only into the tcpd under test.

#include <dlfcn.h>
#include <sys/socket.h>

#include <ctime>

namespace {
using Accept4 = int (*)(int, sockaddr*, socklen_t*, int);
}

extern "C" int accept4(int fd, sockaddr* addr, socklen_t* len, int flags) {
  static auto real = reinterpret_cast<Accept4>(::dlsym(RTLD_NEXT, "accept4"));
  const timespec pause{0, 2'000'000};
  ::nanosleep(&pause, nullptr);
  return real(fd, addr, len, flags);
}

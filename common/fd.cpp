#include "fd.hpp"

#include <unistd.h>

namespace tcpd {

void Fd::reset(int fd) noexcept {
  if (fd_ >= 0) {
    // Linux releases the descriptor even when close() reports EINTR, so never retry:
    // a retry could close a descriptor another thread has just been given.
    ::close(fd_);
  }
  fd_ = fd;
}

}  // namespace tcpd

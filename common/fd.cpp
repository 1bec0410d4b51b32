#include "fd.hpp"

#include <unistd.h>

namespace tcpd {

void Fd::close_fd(int fd) noexcept {
  // Linux releases the descriptor even when close() reports EINTR, so never retry: a retry
  // could close a descriptor another thread has just been given.
  ::close(fd);
}

}  // namespace tcpd

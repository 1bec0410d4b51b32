#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <system_error>

#include "fd.hpp"

namespace tcpd {

// A non-blocking eventfd: the wake-up every waiting thread here polls beside its real work.
inline Fd make_eventfd() {
  Fd fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!fd) throw std::system_error(errno, std::generic_category(), "eventfd");
  return fd;
}

// Makes it readable. A counter already at its maximum stays readable, so a failed write is
// never a lost wake-up.
inline void raise_eventfd(int fd) {
  uint64_t one = 1;
  [[maybe_unused]] auto rc = ::write(fd, &one, sizeof one);
}

}  // namespace tcpd

#pragma once

#include <poll.h>
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

// A pause that must not spin (out of descriptors or kernel memory) but still ends the moment
// `fd` is raised, so that stop() never waits for it. True if it was raised; the counter is left
// as it is for the thread's own wait to see.
inline bool pause_unless_raised(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) > 0;
}

}  // namespace tcpd

#pragma once

// What /proc says about a child process: memory and descriptors, for tests that bound them.

#include <sys/types.h>

#include <climits>
#include <string>

namespace testing_support {

// A "VmHWM:"-style field of /proc/<pid>/status, in KiB; -1 when unreadable.
long proc_status_kib(pid_t pid, const std::string& field);
// Descriptors the process has open, those numbered below `below` only (RLIMIT_NOFILE = n limits
// the numbers to 0..n-1; one inherited from the test's own parent may sit above); -1 when
// unreadable.
int proc_open_fds(pid_t pid, int below = INT_MAX);

// True when this test binary (and so the tcpd it spawns, built with the same flags) runs under
// AddressSanitizer or ThreadSanitizer, whose allocators and shadow memory make resident-size
// and address-space limits meaningless.
constexpr bool kSanitized =
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    true;
#else
    false;
#endif

}  // namespace testing_support

#pragma once

#include <sys/resource.h>

namespace tcpd {

// User plus system CPU seconds of this process so far (0 when getrusage fails).
inline double process_cpu_seconds() {
  rusage ru{};
  if (::getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

}  // namespace tcpd

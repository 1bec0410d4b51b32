#pragma once

#include <fmt/format.h>

#include <cstdio>
#include <string_view>

namespace tcpd {

// One line to stderr in a single write, so lines from different threads never interleave.
template <typename... Args>
void log_line(fmt::format_string<Args...> format, Args&&... args) {
  fmt::memory_buffer buf;
  fmt::format_to(std::back_inserter(buf), "tcpd: ");
  fmt::format_to(std::back_inserter(buf), format, std::forward<Args>(args)...);
  buf.push_back('\n');
  std::fwrite(buf.data(), 1, buf.size(), stderr);
}

}  // namespace tcpd

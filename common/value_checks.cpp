#include "value_checks.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cstdlib>

#include "json.hpp"

namespace tcpd {

std::string check_integer(const std::string& value, long long lo, long long hi) {
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(value.c_str(), &end, 10);
  if (value.empty() || end != value.c_str() + value.size()) {
    return fmt::format("{} is not an integer", value);
  }
  if (errno == ERANGE || v < lo || v > hi) {
    return fmt::format("{} is not between {} and {}", value, lo, hi);
  }
  return {};
}

std::string check_number(const std::string& value, double lo, double hi) {
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(value.c_str(), &end);
  if (value.empty() || end != value.c_str() + value.size()) {
    return fmt::format("{} is not a number", value);
  }
  if (errno == ERANGE || !(v >= lo && v <= hi)) {
    return fmt::format("{} is not between {:g} and {:g}", value, lo, hi);
  }
  return {};
}

std::string check_printable(const std::string& value) {
  for (unsigned char c : value) {
    if (c < 0x20 || c == 0x7f) return fmt::format("contains a control character (0x{:02x})", c);
  }
  if (!valid_utf8(value)) return "is not valid UTF-8";
  return {};
}

std::string strip_brackets(const std::string& host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    return host.substr(1, host.size() - 2);
  }
  return host;
}

}  // namespace tcpd

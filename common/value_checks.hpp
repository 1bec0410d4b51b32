#pragma once

#include <string>

namespace tcpd {

// Checks for numeric values given on a command line, shared by tcpd and tcpc. Each returns what
// is wrong, worded to follow "--port: " ("abc is not an integer", "70000 is not between 0 and
// 65535"), or "" when the value is fine. They know nothing about flags.
std::string check_integer(const std::string& value, long long lo, long long hi);
std::string check_number(const std::string& value, double lo, double hi);

// Text that goes into every log line: no control characters (a newline would forge lines),
// and well-formed UTF-8. Returns what is wrong ("contains a control character (0x0a)").
std::string check_printable(const std::string& value);

// "[::1]" -> "::1": a bracketed IPv6 literal, as it is written in URLs and host:port pairs.
std::string strip_brackets(const std::string& host);

}  // namespace tcpd

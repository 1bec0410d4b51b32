#pragma once

#include <string>
#include <string_view>

namespace tcpd {

// The one JSON string encoder of both binaries: quotes, backslashes and control characters
// escaped, and bytes that are not UTF-8 replaced by U+FFFD, so that every line written is strict
// UTF-8 JSON whatever a peer, a flag or an error message held.
std::string json_string(std::string_view s);

// True when `s` is well-formed UTF-8.
bool valid_utf8(std::string_view s);

}  // namespace tcpd

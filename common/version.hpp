#pragma once

namespace tcpd {
inline constexpr const char* kVersion = "0.1.0";
}

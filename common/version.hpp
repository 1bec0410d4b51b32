#pragma once

namespace tcpd {
// Kept equal to project(VERSION) in CMakeLists.txt (a test checks it against --version).
inline constexpr const char* kVersion = "0.2.0";
}  // namespace tcpd

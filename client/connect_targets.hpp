#pragma once

#include <optional>
#include <string>
#include <vector>

#include "client_config.hpp"
#include "fd.hpp"
#include "load.hpp"
#include "socket.hpp"

namespace tcpd {

// "cannot connect to HOST:PORT: why" for a failed connect.
std::string connect_error(const ClientConfig& cfg, const ConnectResult& c);

// Resolves each target once (--target, or --host/--port) and finds the address that answers
// (localhost may be ::1 or 127.0.0.1), from --source's first address if given. The connection
// that answers is that target's first connection in the run (in `firsts`), not a probe the
// server would count as a client without a request. The error when a target cannot be reached.
std::optional<std::string> find_targets(const ClientConfig& cfg, std::vector<Target>& targets,
                                        std::vector<Fd>& firsts);

}  // namespace tcpd

#pragma once

#include <string>
#include <variant>

#include "server_config.hpp"

namespace tcpd {

// Parsing ended without a config: print `text` (to stdout when code is 0, else stderr) and exit.
struct CliExit {
  int code;
  std::string text;
};

std::variant<ServerConfig, CliExit> parse_server_cli(int argc, const char* const argv[]);

}  // namespace tcpd

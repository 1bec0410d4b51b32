#pragma once

#include <string>
#include <variant>

#include "client_config.hpp"

namespace tcpd {

struct ClientCliExit {
  int code;
  std::string text;  // stdout when code is 0, else stderr
};

std::variant<ClientConfig, ClientCliExit> parse_client_cli(int argc, const char* const argv[]);

}  // namespace tcpd

#pragma once

#include <string>
#include <variant>
#include <vector>

#include "client_config.hpp"

namespace tcpd {

struct ClientCliExit {
  int code;
  std::string text;  // stdout when code is 0, else stderr
};

std::variant<ClientConfig, ClientCliExit> parse_client_cli(int argc, const char* const argv[]);

// `tcpc merge [--text] [thresholds] FILE...`
struct MergeConfig {
  std::vector<std::string> files;
  bool text = false;
  ClientConfig limits;  // only its thresholds are set
};
// argv without the "merge" word: argv[0] is the program.
std::variant<MergeConfig, ClientCliExit> parse_merge_cli(int argc, const char* const argv[]);

}  // namespace tcpd

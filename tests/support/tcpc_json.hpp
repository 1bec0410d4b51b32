#pragma once

// Running the tcpc binary from a test and reading its one JSON line.

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace testing_support {

// tcpc's argv: the binary under test, then `args`.
inline std::vector<std::string> tcpc(std::vector<std::string> args) {
  args.insert(args.begin(), TCPC_BIN);
  return args;
}

// The first line of tcpc's stdout as JSON (--json prints one object on one line).
inline nlohmann::json parse_json(const std::string& out) {
  return nlohmann::json::parse(out.substr(0, out.find('\n')));
}

}  // namespace testing_support

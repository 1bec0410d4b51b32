// libFuzzer target for the request framer: arbitrary bytes in arbitrary chunk sizes must never
// crash it, and every line it returns must be what a simple reference splitter returns.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "line_framer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const std::size_t max = data[0] % 64 + 1;  // small limits exercise too_long
  const std::size_t chunk = data[1] % 16 + 1;
  std::string_view input(reinterpret_cast<const char*>(data + 2), size - 2);

  // Reference: split on '\n', drop one trailing '\r', stop at the first over-long line or at
  // a pending tail that can no longer fit.
  std::vector<std::string> expected;
  bool expect_too_long = false;
  {
    std::size_t start = 0;
    for (;;) {
      auto nl = input.find('\n', start);
      if (nl == std::string_view::npos) {
        const std::size_t pending = input.size() - start;
        expect_too_long = pending > max + 1 || (pending == max + 1 && input.back() != '\r');
        break;
      }
      std::string line(input.substr(start, nl - start));
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.size() > max) {
        expect_too_long = true;
        break;
      }
      expected.push_back(line);
      start = nl + 1;
    }
  }

  tcpd::LineFramer framer(max);
  std::vector<std::string> got;
  bool too_long = false;
  for (std::size_t off = 0; off < input.size() && !too_long; off += chunk) {
    framer.append(input.substr(off, chunk));
    for (;;) {
      auto n = framer.next();
      if (n.status == tcpd::LineFramer::Status::line) {
        got.emplace_back(n.line);
        continue;
      }
      too_long = n.status == tcpd::LineFramer::Status::too_long;
      break;
    }
  }
  if (got != expected || too_long != expect_too_long) std::abort();
  return 0;
}

// libFuzzer target for the PROXY protocol header parser: arbitrary bytes must never crash it or
// read past them; a header found must lie within the input and stay found as more bytes come; a
// prefix of a header is never bad.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "proxy_header.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const tcpd::ProxyHeader whole = tcpd::parse_proxy_header(input);
  using Status = tcpd::ProxyHeader::Status;
  if (whole.status == Status::done) {
    if (whole.length == 0 || whole.length > input.size() || whole.length > tcpd::kMaxProxyHeader) {
      std::abort();
    }
    // The same header followed by anything is the same header.
    const auto again = tcpd::parse_proxy_header(input.substr(0, whole.length));
    if (again.status != Status::done || again.length != whole.length) std::abort();
    // Every strict prefix of it waits for more.
    for (std::size_t n = 0; n < whole.length; ++n) {
      if (tcpd::parse_proxy_header(input.substr(0, n)).status != Status::need_more) std::abort();
    }
  }
  if (whole.status == Status::need_more && input.size() > tcpd::kMaxProxyHeader) std::abort();
  return 0;
}
